"""bench/bench_machine.py reports the CPU kind and a positive matmul rate."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("bench_machine", Path(__file__).parents[1] / "bench" / "bench_machine.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_machine_report_names_the_cpu_kind_and_measures_a_rate():
    info = bench.cpu_info()
    assert {"cpu_model", "avx512f", "native_bf16", "cores"} <= set(info)
    assert isinstance(info["native_bf16"], bool)
    assert bench.matmul_rate(__import__("torch").float32, m=16, k=16, n=16, seconds=0.01) > 0
