"""Compile one rule file: parse, then the ordered passes, then the checked ``VersionModel``.

``PASSES`` is data, as in OPA's compiler: each named pass runs in turn. The first stage (metadata,
declarations, scopes, names, cycles) must be clean before the second (types, weights, bands, ranges,
tests) runs, because those need every name resolved and an evaluation order; within a stage every
pass runs, so one compile reports all problems at once.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable

from .diagnostics import Diagnostic, DiagnosticSink, sort_diagnostics
from .errors import BagalauError
from .model import VersionModel
from .parser import ParseFailed, parse
from . import passes

# (name, function, stage). Stage 2 runs only when stage 1 produced no errors.
PASSES: list[tuple[str, Callable[[passes.Compilation], None], int]] = [
    ("check_metadata", passes.check_metadata, 1),            # also settles the subject kinds
    ("collect_declarations", passes.collect_declarations, 1),  # needs: subject kinds
    ("build_scopes", passes.build_scopes, 1),                # needs: declarations
    ("check_names", passes.check_names, 1),                  # needs: scopes; expands helpers, records deps
    ("check_cycles", passes.check_cycles, 1),                # needs: deps; sets the evaluation order
    ("check_types", passes.check_types, 2),                  # needs: resolved names, order
    ("check_weights", passes.check_weights, 2),
    ("check_ranges", passes.check_ranges, 2),                # needs: order; reports E500/W501/E502
    ("check_bands", passes.check_bands, 2),                  # needs: ranges (a grade covers what its value can be)
    ("check_tests", passes.check_tests, 2),
]

BaseLookup = Callable[[str, str], "VersionModel | None"]  # (methodology, version) -> compiled base


def content_hash(text: str, base: VersionModel | None) -> str:
    h = hashlib.sha256()
    if base is not None:
        h.update(base.content_hash.encode())
    h.update(text.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def compile_text(text: str, path: str, base_lookup: BaseLookup | None = None) -> tuple[VersionModel | None, list[Diagnostic]]:
    """Compile rule-file text. Returns the model (None on any error) and every diagnostic, sorted."""
    try:
        rule_file = parse(text, path)
    except ParseFailed as e:
        return None, e.diagnostics
    sink = DiagnosticSink({path: text})
    h = rule_file.header
    base = None
    if h.extends:
        base = base_lookup(h.methodology, h.extends) if base_lookup else None
        if base is None:
            sink.report("E603", h.span, f"base version {h.methodology}@{h.extends} is not known (or does not compile)")
            return None, sort_diagnostics(sink.items)
        for name, lines in ((base.path, base.source_text),):
            sink.add_source(name, lines)
    comp = passes.Compilation(rule_file, sink, base)
    for name, fn, stage in PASSES:
        if stage == 2 and sink.has_errors():
            break
        started = time.perf_counter()
        fn(comp)
        comp.timings[name] = time.perf_counter() - started
    diags = sort_diagnostics(sink.items)
    if sink.has_errors():
        return None, diags
    model = VersionModel(
        methodology=h.methodology,
        version=h.version,
        path=path,
        extends=h.extends,
        title=h.title or (base.title if base else {}),
        basis=h.basis,
        effective_from=h.effective_from,
        effective_to=h.effective_to,
        status=h.status,
        subjects=comp.subjects,
        content_hash=content_hash(text, base),
        source_text=text,
        header_span=h.span,
        scopes=comp.scopes,
        tests=comp.tests,
        common=comp.common,
        overlays=comp.overlays,
        pass_timings=comp.timings,
        unstated_params=sorted({n for s in comp.scopes.values() for n, p in s.params.items() if p.unstated}),
    )
    return model, diags


def check_source(text: str, filename: str, registry=None) -> list[Diagnostic]:
    """Diagnostics for rule source that is not deployed (editors, review tools, the CheckRules RPC).

    An amendment's base is looked up in ``registry`` when given.
    """
    def lookup(methodology: str, version: str):
        if registry is None:
            return None
        try:
            return registry.get(methodology, version).model
        except BagalauError:  # an unknown base is reported as E603
            return None

    _, diags = compile_text(text, filename, lookup)
    return diags
