"""Cost of the 3D tiling checks: the bundled ``volume_3d`` artifact verified in one process.

``python bench/bench_verify_3d.py [build|recipe]`` converts ``models/volume.onnx`` as
``recipes/volume_3d.yaml`` does (16 x 64 x 64 tile, overlap 12) into a temporary folder, then
verifies it with the build's settings (``build``: seams on a 2 x 2 x 2-tile volume, analysis
only on failure) or ``czbuild verify --recipe``'s (``recipe``: receptive-field probe and
minimal-overlap search always). Prints the verification's wall time and the process's peak
RSS. Run it once per mode in a fresh process (peak RSS is per process); compare with
``tiling=False`` (``nontiling`` mode) for the part the tiling checks add.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRE = [{"op": "scale_range", "in": [0, 65535], "out": [0, 1]}]


def main(mode: str) -> None:
    from czbuild.convert import ConversionRequest, convert
    from czbuild.formats.czann import CzannMetadata
    from czbuild.sources.kinds import OnnxFile
    from czbuild.verify import verify_artifact
    from czbuild.verify.settings import BUILD

    source = OnnxFile(str(ROOT / "models" / "volume.onnx"), channels_first=True)
    md = CzannMetadata(
        type="SingleClassSemanticSegmentation",
        input_shape=None,
        output_shape=None,
        classes=("Background", "Nuclei"),
        min_overlap=(12, 12, 12),
        format_version="2.0.0",
    )
    settings = {
        "build": BUILD,
        "recipe": BUILD.replace(overlap_analysis=True),
        "nontiling": BUILD.replace(tiling=False),
    }[mode]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "volume_3d.czann"
        convert(
            ConversionRequest(
                source=source, metadata=md, preprocessing=tuple(PRE), spatial_dims=(16, 64, 64)
            ),
            out,
        )
        start = time.perf_counter()
        report = verify_artifact(out, settings=settings, source_model=source, preprocessing=PRE)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seams = report.get("tiling.seams")
    print(
        f"{mode}: ok={report.ok} seams={seams.status if seams else '-'} "
        f"verify {seconds:.2f} s, peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build")
