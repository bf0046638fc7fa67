"""scripts/gpu_check.sh and its helpers, on the CPU: the whole dry run (--device cpu --tiny) end to end, the wheel
unpacking that replaces pip on the GPU machine, and the dependency closure that leaves torch's own out.

The GPU tests themselves (test_gpu.py) are skipped here with the reason; the dry run runs their bodies on the CPU."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _helpers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check_helpers", ROOT / "scripts" / "gpu_check_helpers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
def test_dry_run_every_stage_on_cpu(tmp_path: Path) -> None:
    """The dry run finishes every stage within its budget and leaves the JSON a GPU run would leave."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    # an empty wheels folder: this interpreter's packages are used (a prepared .gpu-wheels targets Python 3.12)
    (tmp_path / "no-wheels").mkdir()
    # the default budget (110 s) is for an idle machine; a generous one here, so a busy machine cannot skip a stage
    p = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--out", str(out),
                        "--wheels", str(tmp_path / "no-wheels"), "--budget", "400"], capture_output=True, text=True,
                       env=env, timeout=500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert str(out) in p.stdout  # the folder is named at the end
    summary = json.loads((out / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["tests", "generate_debug", "train_lm_debug", "quantizers"]
    assert all(s["status"] == "ok" for s in summary["stages"]) and summary["ok"]

    # the GPU tests' bodies ran on the CPU; only the compiled trainer and DDP over 2 GPUs are left out, with reasons
    tests = json.loads((out / "gpu_tests.json").read_text())
    assert tests["cuda_available"] is False and tests["counts"]["passed"] >= 20
    skipped = {k.split("::")[-1]: t["reason"] for k, t in tests["tests"].items() if t["outcome"] != "passed"}
    assert sorted(skipped) == ["test_ddp_codebooks_equal_across_gpus", "test_lm_trainer_compiled_bf16_on_gpu"]
    assert "needs 2 GPUs" in skipped["test_ddp_codebooks_equal_across_gpus"]
    assert tests["tests"]["tests/gpu/test_gpu.py::test_lm_bf16_step_close_to_fp32"]["figures"]["grad_cosine"] > 0.98

    results = {f.name: json.loads(f.read_text()) for f in out.glob("*.json")}
    assert {"env.json", "gpu_tests.json", "generate_debug.json", "train_lm_debug.json", "quantizers.json",
            "summary.json"} <= set(results)
    for name, data in results.items():
        if name not in ("env.json", "summary.json"):
            assert {"gpu", "driver", "torch", "peers"} <= set(data["environment"]), name
    assert results["env.json"]["device"] == "cpu" and results["env.json"]["torch"]

    have_hf, have_vqp = _installed("transformers"), _installed("vector-quantize-pytorch")
    gen = results["generate_debug.json"]["results"]
    assert {(r["decoder"], r["batch"]) for r in gen} >= {("ours", 1), ("ours", 2), ("ours_jacobi", 2)}
    assert any(r["decoder"] == "hf" for r in gen) == have_hf
    run = results["train_lm_debug.json"]["runs"][0]
    assert run["omnitok"]["tokens_per_s"] > 0 and ("hf_llama" in run) == have_hf
    q = results["quantizers.json"]
    assert q["complete"] and q["results"][0]["runs"][0]["ours"]["status"] == "ok"
    assert (q["results"][0]["runs"][0]["peer"].get("status") == "ok") == have_vqp


def _wheel(folder: Path, name: str, version: str, files: dict[str, str], tag: str = "py3-none-any") -> Path:
    """A minimal wheel: the files, METADATA, WHEEL and RECORD in <name>-<version>.dist-info."""
    stem = name.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    path = folder / f"{stem}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


def _manifest(folder: Path, wheels: list[tuple[str, str, Path]]) -> None:
    entries = [{"name": n, "version": v, "file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                "bytes": p.stat().st_size} for n, v, p in wheels]
    (folder / "manifest.json").write_text(json.dumps({"python_version": "3.12", "wheels": entries}))


def test_install_unpacks_only_what_the_interpreter_lacks(tmp_path: Path) -> None:
    h = _helpers()
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    dep = _wheel(wheels, "omnitok-probe-dep", "1.2", {
        "omnitok_probe_dep/__init__.py": "VALUE = 7\n",
        "omnitok_probe_dep-1.2.data/purelib/omnitok_probe_extra.py": "EXTRA = 8\n"})
    present = _wheel(wheels, "pytest", "0.0.1", {"pytest/__init__.py": "raise ImportError('the stand-in')\n"})
    _manifest(wheels, [("omnitok-probe-dep", "1.2", dep), ("pytest", "0.0.1", present)])
    (site / "stale_pkg").mkdir(parents=True)  # left by an earlier run: the site is laid anew

    actions = {d["name"]: d["action"] for d in h.install(wheels, site)}
    assert actions["omnitok-probe-dep"] == "unpacked 1.2" and actions["pytest"].startswith("kept this interpreter's")
    assert sorted(p.name for p in site.iterdir()) == ["omnitok_probe_dep", "omnitok_probe_dep-1.2.dist-info",
                                                      "omnitok_probe_extra.py"]
    code = ("import importlib.metadata as m, omnitok_probe_dep as d, omnitok_probe_extra as e; "
            "print(d.VALUE, e.EXTRA, m.version('omnitok-probe-dep'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(site)})
    assert r.stdout.split() == ["7", "8", "1.2"], r.stderr

    dep.write_bytes(dep.read_bytes() + b"\0")  # a wheel changed after prepare
    with pytest.raises(SystemExit, match="sha256"):
        h.install(wheels, site)


def test_install_refuses_a_binary_wheel_for_another_python(tmp_path: Path) -> None:
    h = _helpers()
    other = "cp39" if sys.version_info[:2] != (3, 9) else "cp38"
    w = _wheel(tmp_path, "omnitok-probe-bin", "1.0", {"omnitok_probe_bin.py": ""},
               tag=f"{other}-{other}-manylinux_2_17_x86_64")
    _manifest(tmp_path, [("omnitok-probe-bin", "1.0", w)])
    with pytest.raises(SystemExit, match=f"built for {other}"):
        h.install(tmp_path, tmp_path / "site")


def test_closure_leaves_out_what_only_torch_needs() -> None:
    h = _helpers()

    def item(name: str, *requires: str) -> dict:
        return {"metadata": {"name": name, "version": "1", "requires_dist": list(requires)}}

    report = {"install": [
        item("transformers", "huggingface-hub>=1", "numpy", "torch; extra == 'torch'"),
        item("Huggingface_Hub", "filelock", "tomli; python_version < '3.11'"),
        item("numpy"), item("filelock"), item("tomli"),
        item("vector-quantize-pytorch", "torch>=2", "einx"), item("einx", "numpy", "sympy"),
        item("torch", "triton", "sympy", "filelock"), item("triton"), item("sympy", "mpmath"), item("mpmath"),
    ]}
    names = [i["metadata"]["name"] for i in h.closure(report, ["transformers>=4", "vector-quantize-pytorch"], "3.12")]
    # filelock and sympy come with torch (it needs them too); tomli only below Python 3.11; torch only as an extra
    assert names == ["einx", "Huggingface_Hub", "numpy", "transformers", "vector-quantize-pytorch"]


def test_finish_judges_the_targets_and_stamps_every_result(tmp_path: Path) -> None:
    """Targets only for B / L on a GPU: >= 20x HF at batch 1, >= 10x at batch 64, >= 45% MFU for L."""
    h = _helpers()
    env = {"gpu": "NVIDIA H200", "driver": "580.1", "torch": "2.11.0", "peers": {}}
    (tmp_path / "env.json").write_text(json.dumps(env))
    (tmp_path / "stages.jsonl").write_text(json.dumps({"stage": "generate_B", "status": "ok", "seconds": 1.0,
                                                       "cap_s": 9}) + "\n")
    rows = [{"decoder": "ours", "batch": 1, "speedup_vs_hf": 25.0, "tokens_per_s": 1.0},
            {"decoder": "ours", "batch": 64, "speedup_vs_hf": 8.0, "tokens_per_s": 1.0},
            {"decoder": "hf", "batch": 1, "speedup_vs_hf": 1.0, "tokens_per_s": 1.0}]
    (tmp_path / "generate_B.json").write_text(json.dumps({"model": {"preset": "B"}, "device": "cuda",
                                                          "results": rows}))
    (tmp_path / "generate_debug.json").write_text(json.dumps({"model": {"preset": "debug"}, "device": "cpu",
                                                              "results": rows[:1]}))
    runs = [{"preset": p, "batch": 16, "seq_len": 2048, "omnitok": {"tokens_per_s": 1e5, "mfu": m}}
            for p, m in (("B", 0.30), ("L", 0.47))]
    (tmp_path / "train_lm_L.json").write_text(json.dumps({"runs": runs}))
    summary = h.finish(tmp_path)
    met = {h_["what"]: h_["met"] for h_ in summary["headline"]}
    assert met == {"generate B ours batch 1": True, "generate B ours batch 64": False,
                   "generate debug ours batch 1": None, "train_lm B 16x2048": None, "train_lm L 16x2048": True}
    assert summary["ok"] and summary["environment"] == env
    for name in ("generate_B.json", "generate_debug.json", "train_lm_L.json"):
        assert json.loads((tmp_path / name).read_text())["environment"] == env
