"""Report each engine benchmark as a ratio against its hand-written baseline from the same run,
and the gRPC service (test_bench_service.py) against in-process evaluation from the same run."""

from __future__ import annotations

TARGET = 0.7  # the engine should reach at least this share of the hand-written rate
SERVICE_TARGET = 0.4  # service batch throughput, as a share of the in-process rate (issue 3)
AUDIT_COST_TARGET = 0.20  # throughput the audit log may cost, at most (issue 3)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    by_name = {b.name.split("[")[0]: getattr(b.stats, "stats", b.stats) for b in session.benchmarks if b.stats}
    pairs = [(n, n.replace("test_engine_", "test_handwritten_")) for n in by_name if n.startswith("test_engine_")]
    if pairs:
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
    _service_summary(terminalreporter, session)


def _service_summary(terminalreporter, session) -> None:
    rows = [b.extra_info["service"] for b in session.benchmarks if "service" in (getattr(b, "extra_info", None) or {})]
    if not rows:
        return
    terminalreporter.section("bagalau: gRPC service (client in another process) / in-process rate (same run)")
    for s in sorted(rows, key=lambda r: r["workload"]):
        ratio_ok = "meets" if s["ratio"] >= SERVICE_TARGET else "BELOW"
        audit_ok = "meets" if s["audit_cost"] <= AUDIT_COST_TARGET else "ABOVE"
        write = terminalreporter.write_line
        write(f"{s['workload']}:")
        write(f"  unary Evaluate      median {s['unary_median_ms']:.2f} ms, p99 {s['unary_p99_ms']:.2f} ms "
              f"(audit on: {s['unary_audit_median_ms']:.2f} / {s['unary_audit_p99_ms']:.2f} ms)")
        write(f"  EvaluateBatch       {s['batch_items_per_s']:,.0f} items/s (batches of {s['batch_size']}, audit off)")
        write(f"  in-process          {s['in_process_items_per_s']:,.0f} items/s")
        write(f"  batch / in-process  {s['ratio']:.2f} ({ratio_ok} the {SERVICE_TARGET} target)")
        write(f"  with SQLite audit   {s['batch_audit_items_per_s']:,.0f} items/s, counted until all is written "
              f"(the last records {s['audit_drain_ms']:.0f} ms after the last call)")
        write(f"  audit cost          {s['audit_cost']:.1%} ({audit_ok} the {AUDIT_COST_TARGET:.0%} limit)")
