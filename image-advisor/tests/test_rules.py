"""The advisor's rules on synthetic layers: each fires with exactly the planted bytes, and no byte counts twice."""

from __future__ import annotations

import pytest

from image_advisor.composition import file_categories
from image_advisor.layers import Entry as E
from image_advisor.layers import Layer, SavedImage, analyze, normalize
from image_advisor.profile import Profile
from image_advisor.report import compare_reports, gate, markdown
from image_advisor.rules import Evidence, Reference, advise
from image_advisor.trace import Trace, parse_requests

SITE = "usr/local/lib/python3.11/site-packages"
STATUS_OK = "Status: install ok installed"


def layer(created_by: str, *entries: tuple[str, int]) -> Layer:
    es = [E(normalize(p), s, "dir" if p.endswith("/") else "file") for p, s in entries]
    return Layer(created_by, es, sum(e.size for e in es))


def dist(name: str, files: dict[str, int], requires: tuple[str, ...] = ()) -> tuple[list[tuple[str, int]], dict]:
    """A distribution's files (RECORD and METADATA included) and the captured texts that describe it."""
    info = f"{SITE}/{name}-1.0.dist-info"
    record = "\n".join(f"{p},," for p in [*files, f"{name}-1.0.dist-info/RECORD", f"{name}-1.0.dist-info/METADATA"])
    metadata = f"Name: {name}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires) + "\n"
    entries = [(f"{SITE}/{p}", s) for p, s in files.items()]
    entries += [(f"{info}/RECORD", len(record)), (f"{info}/METADATA", len(metadata))]
    return entries, {f"{info}/RECORD": record, f"{info}/METADATA": metadata}


def evidence(layers: list[Layer], captured: dict | None = None, user: str = "65532", trace: Trace | None = None,
             **kw) -> Evidence:
    saved = SavedImage(layers, {"config": {"User": user}}, captured or {})
    analysis = analyze(layers)
    _, dist_of = file_categories(saved, analysis, roots=set())
    return Evidence(saved, analysis, dist_of, trace=trace, **kw)


def by_rule(ev: Evidence) -> dict[str, int]:
    return {f.rule: f.bytes for f in advise(ev).findings if f.confidence != "surface"}


BASE = layer("", ("usr/bin/python3.11", 5000), ("etc/hostname", 10))


def test_clean_image_has_no_findings():
    ev = evidence([BASE, layer("COPY app /app/app", ("app/app/main.py", 300))])
    assert advise(ev).findings == []


def test_package_caches_are_claimed_per_kind():
    ev = evidence([BASE, layer("RUN pip install x", ("root/.cache/pip/http/a", 1234), ("root/.cache/pip/wheels/b", 66)),
                   layer("RUN apt-get update", ("var/lib/apt/lists/deb_Packages", 777))])
    found = by_rule(ev)
    assert found == {"cache-pip": 1300, "cache-apt-lists": 777}
    first = advise(ev).findings[0]
    assert first.rule == "cache-pip" and first.confidence == "certain" and first.demo == ""  # no profile: no demo
    shown = Profile(shown_in={"cache-pip": "step-2/"}, fixes={"cache-pip": "see step 2"})
    first = advise(evidence(ev.saved.layers, profile=shown)).findings[0]
    assert (first.demo, first.fix) == ("step-2/", "see step 2")


def test_hidden_copies_split_by_cause():
    ev = evidence([BASE, layer("RUN make /x /y", ("x", 500), ("y", 300), ("z", 40)),
                   layer("RUN rm /x", (".wh.x", 0)),
                   layer("RUN chmod 600 /y", ("y", 300)),
                   layer("RUN echo > /z", ("z", 1))])
    assert by_rule(ev) == {"deleted-in-later-layer": 500, "duplicated-by-metadata": 300,
                           "overwritten-in-later-layer": 40}


def test_hidden_copies_name_their_paths_and_both_instructions():
    ev = evidence([BASE, layer("RUN apt-get update", ("var/lib/apt/lists/a", 600), ("var/lib/apt/lists/b", 400),
                               ("etc/big", 50)),
                   layer("RUN rm -rf /var/lib/apt/lists", ("var/lib/apt/.wh.lists", 0))])
    [finding] = advise(ev).findings
    assert finding.rule == "deleted-in-later-layer" and finding.bytes == 1000
    assert finding.evidence[-1] == ("/var/lib/apt/lists/: 1.0 KB in 2 files, written by layer 1 (RUN apt-get update), "
                                    "parent directory deleted in layer 2 (RUN rm -rf /var/lib/apt/lists)")


def test_build_context_names_the_dockerignore_lines():
    ev = evidence([BASE, layer("COPY . /app", ("app/.git/objects/ab", 300), ("app/tests/test_x.py", 200),
                               ("app/explore.ipynb", 100), ("app/main.py", 50),
                               ("app/__pycache__/m.cpython-311.pyc", 7))])
    [finding] = [f for f in advise(ev).findings if f.rule == "build-context"]
    assert finding.bytes == 607
    assert finding.fix == ".dockerignore: .git, *.ipynb, tests, **/__pycache__"


def test_a_bytecode_only_stdlib_is_not_build_context():
    """A standard library copied as bytecode only (COPY --from a build stage; history does not record --from)
    is the modules themselves; a .pyc beside its own .py is stray bytecode."""
    ev = evidence([BASE, layer("COPY /python/ /", ("usr/lib/python3.13/os.pyc", 900),
                               ("usr/lib/python3.13/json/__init__.pyc", 90)),
                   layer("COPY . /app", ("app/main.py", 50), ("app/main.pyc", 40))])
    [finding] = [f for f in advise(ev).findings if f.rule == "build-context"]
    assert finding.bytes == 40


def test_dev_tools_and_what_only_they_need():
    pytest_files, pytest_meta = dist("pytest", {"pytest/__init__.py": 700}, requires=("pluggy",))
    pluggy_files, pluggy_meta = dist("pluggy", {"pluggy/__init__.py": 300})
    flask_files, flask_meta = dist("flask", {"flask/__init__.py": 900}, requires=("click",))
    click_files, click_meta = dist("click", {"click/__init__.py": 100})
    ev = evidence([BASE, layer("RUN pip install", *pytest_files, *pluggy_files, *flask_files, *click_files)],
                  {**pytest_meta, **pluggy_meta, **flask_meta, **click_meta})
    dev_bytes = sum(s for _, s in pytest_files + pluggy_files)
    assert by_rule(ev) == {"dev-distributions": dev_bytes}


def test_trace_rules_never_imported_and_unmapped_libraries():
    used_files, used_meta = dist("mixed", {"mixed/__init__.py": 10, "mixed/libunused.so": 2 << 20,
                                           "mixed/_core.so": 4096})
    unused_files, unused_meta = dist("unused", {"unused/__init__.py": 400})
    trace = Trace(True, processes=2, module_files={f"{SITE}/mixed/__init__.py"}, mapped={f"{SITE}/mixed/_core.so"})
    ev = evidence([BASE, layer("RUN pip install", *used_files, *unused_files)], {**used_meta, **unused_meta},
                  trace=trace)
    found = by_rule(ev)
    assert found == {"never-imported": sum(s for _, s in unused_files), "unmapped-libraries": 2 << 20}
    assert advise(ev).distributions_never_imported == [("unused", sum(s for _, s in unused_files))]
    without = by_rule(evidence([BASE, layer("RUN pip install", *used_files, *unused_files)],
                               {**used_meta, **unused_meta}))
    assert "never-imported" not in without and "unmapped-libraries" not in without


def test_a_byte_is_counted_once():
    # A test suite inside a dev tool: dev-distributions claims it; build-files-in-packages does not count it again.
    files, meta = dist("pytest", {"pytest/__init__.py": 700, "pytest/tests/test_a.py": 250})
    ev = evidence([BASE, layer("RUN pip install", *files, (f"{SITE}/numpy/tests/t.py", 90))], meta)
    advice = advise(ev)
    assert by_rule(ev) == {"dev-distributions": sum(s for _, s in files), "build-files-in-packages": 90}
    assert advice.addressable_bytes == sum(f.bytes for f in advice.findings)


def dpkg(*packages: tuple[str, dict[str, int]]) -> tuple[list[tuple[str, int]], dict]:
    status = "\n\n".join(f"Package: {name}\n{STATUS_OK}\nArchitecture: amd64\n" for name, _ in packages)
    captured = {"var/lib/dpkg/status": status}
    entries = [("var/lib/dpkg/status", len(status))]
    for name, files in packages:
        captured[f"var/lib/dpkg/info/{name}.list"] = "\n".join("/" + p for p in files)
        entries += list(files.items())
    return entries, captured


def test_toolchain_and_full_base():
    entries, captured = dpkg(("gcc-12", {"usr/bin/gcc-12": 5000}), ("libc6", {"usr/lib/libc.so.6": 2000}),
                             ("libx11-6", {"usr/lib/libX11.so.6": 3000}), ("libssl3", {"usr/lib/libssl.so.3": 900}))
    ev = evidence([BASE, layer("", *entries)], captured)
    assert by_rule(ev) == {"build-toolchain": 5000}
    slim = Reference("slim", "python:3.11-slim", {"libc6", "libssl3"})
    trace = Trace(True, mapped={"usr/lib/libc.so.6", "usr/lib/libssl.so.3"})
    found = by_rule(evidence([BASE, layer("", *entries)], captured, references=[slim], trace=trace))
    # Compilers have a rule of their own; the slim base claims the rest of what it lacks and is never mapped.
    assert found == {"build-toolchain": 5000, "full-base": 3000}
    branches = Profile(shown_in={"build-toolchain/slim": "SLIM", "build-toolchain/stage": "STAGE"},
                       fixes={"build-toolchain/slim": "FROM {image}"})
    fixes = {f.rule: (f.demo, f.fix) for f in advise(evidence([BASE, layer("", *entries)], captured, references=[slim],
                                                             trace=trace, profile=branches)).findings}
    # It came with a base larger than slim: the slim base is the fix.
    assert fixes["build-toolchain"] == ("SLIM", "FROM python:3.11-slim")
    # A base the image is not built on (it holds under 90 % of its packages) is no advice.
    other = Reference("slim", "python:3.13-slim", {"libc6", "libfoo", "libbar"})
    assert by_rule(evidence([BASE, layer("", *entries)], captured, references=[other], trace=trace)) == {
        "build-toolchain": 5000}
    [finding] = advise(evidence([BASE, layer("", *entries)], captured, references=[other], trace=trace,
                                profile=branches)).findings
    assert finding.demo == "STAGE"  # added on top of its base: compile in a build stage


def test_stdlib_bytecode_reports_seconds():
    measured = {"missing": 120, "imported": 150, "cold_s": 0.61, "warm_s": 0.18, "runs": 5, "pyc_bytes": 2_500_000,
                "stdlib": "/usr/lib/python3.11"}
    [finding] = advise(evidence([BASE], bytecode=measured)).findings
    assert finding.rule == "stdlib-without-bytecode" and finding.seconds == 0.43 and finding.bytes == 0


def test_attack_surface_has_no_bytes():
    [finding] = advise(evidence([layer("", ("bin/sh", 100), ("usr/bin/dpkg", 50))], user="")).findings
    assert finding.rule == "attack-surface" and finding.bytes == 0
    assert {"runs as root (no USER, or USER 0)", "a shell: /bin/sh", "a package manager: /usr/bin/dpkg"} == set(
        finding.evidence)


def test_torch_for_onnx_is_an_estimate_from_measured_figures():
    torch_files, torch_meta = dist("torch", {"torch/lib/libtorch_cpu.so": 700_000}, requires=("sympy",))
    sympy_files, sympy_meta = dist("sympy", {"sympy/__init__.py": 100_000})
    ev = evidence([BASE, layer("RUN pip", *torch_files, *sympy_files), layer("COPY model /opt/model",
                                                                           ("opt/model/model.safetensors", 400_000))],
                  {**torch_meta, **sympy_meta},
                  profile=Profile(onnx_reference={"onnxruntime_bytes": 200_000, "onnx_model_bytes": 25,
                                                  "torch_model_bytes": 100}))
    [finding] = advise(ev).findings
    stack = sum(s for _, s in torch_files + sympy_files)
    assert finding.rule == "torch-for-onnx" and finding.confidence == "estimate"
    assert finding.bytes == stack + 300_000 - 200_000


def report_of(ev: Evidence, name: str, composition: dict) -> dict:
    return {"image": name, "total_bytes": ev.analysis.total_bytes, "advice": advise(ev).to_json(), "layers": [],
            "composition": {"categories": composition}, "python_distributions": [], "os_package_sizes": []}


def test_gate_and_comparison():
    bloated = evidence([BASE, layer("RUN pip", ("root/.cache/pip/a", 10_000))])
    clean = evidence([BASE])
    before = report_of(clean, "old", {"caches": 0})
    after = report_of(bloated, "new", {"caches": 10_000})
    assert gate(after, fail_above=9_999) and not gate(after, fail_above=10_000)
    diff = compare_reports(before, after)
    assert diff["introduced"] == ["cache-pip"] and diff["fixed"] == []
    assert diff["growth_pct"] == pytest.approx(100 * 10_000 / 5010, abs=0.01)
    [reason] = gate(after, diff=diff, max_growth_pct=50)
    assert "cache-pip" in reason
    assert not gate(after, diff=diff, max_growth_pct=500)
    assert "`cache-pip`" in markdown(after, diff)


def test_probe_requests_parse():
    got = parse_requests('POST /classify {"text": "a | b \\" }"} | GET /healthz')
    assert [(r.method, r.path) for r in got] == [("POST", "/classify"), ("GET", "/healthz")]
    assert got[0].body == b'{"text": "a | b \\" }"}'
    with pytest.raises(ValueError, match="expected 'METHOD /path"):
        parse_requests("classify please")
    with pytest.raises(ValueError, match="not JSON"):
        parse_requests("POST /classify {text}")


def test_probe_leaves_out_frozen_modules():
    """os, io, site ... run from bytecode frozen into the interpreter: their .py is never read, so no .pyc
    is missing for them (stdlib-without-bytecode counted them on an image that compiled only what it imports)."""
    import os

    from image_advisor import trace_probe

    assert os.__spec__.origin == "frozen"  # this interpreter freezes os, as 3.11+ do
    snapshot = trace_probe._snapshot()
    assert "os" in snapshot["modules"]
    assert os.path.abspath(os.__file__) not in snapshot["module_files"]
    assert os.path.abspath(trace_probe.__file__) in snapshot["module_files"]
