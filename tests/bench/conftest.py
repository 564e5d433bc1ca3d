"""Report each engine benchmark as a ratio against its hand-written baseline from the same run."""

from __future__ import annotations

TARGET = 0.7  # the engine should reach at least this share of the hand-written rate


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    by_name = {b.name.split("[")[0]: getattr(b.stats, "stats", b.stats) for b in session.benchmarks if b.stats}
    pairs = [(n, n.replace("test_engine_", "test_handwritten_")) for n in by_name if n.startswith("test_engine_")]
    terminalreporter.section("bagalau: engine rate / hand-written rate (same run)")
    for engine, baseline in pairs:
        if baseline not in by_name:
            continue
        e, h = by_name[engine], by_name[baseline]
        ratio = h.median / e.median
        verdict = "meets" if ratio >= TARGET else "BELOW"
        terminalreporter.write_line(
            f"{engine[len('test_engine_'):]}: engine {1 / e.median:,.0f}/s, hand-written {1 / h.median:,.0f}/s, "
            f"ratio {ratio:.2f} ({verdict} the {TARGET} target)")
