"""``omnitok data build|info|show`` and missing-tool errors."""

from __future__ import annotations

import pytest
from PIL import Image

from omnitok.cli import main
from omnitok.data.cards import verify_card
from omnitok.data.paths import MissingToolError, require_tool


def test_build_info_show(tmp_path, capsys, npm_dir):
    root = str(tmp_path)
    assert main(["data", "build", "digits", "--root", root, "--limit", "12", "--no-progress"]) == 0
    assert "digits: 12 examples" in capsys.readouterr().out
    assert main(["data", "info", "--root", root, "--verify"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "all checksums match" in out
    sheet = tmp_path / "sheet.png"
    assert main(["data", "show", "digits", "--root", root, "--out", str(sheet), "--tile", "20"]) == 0
    out = capsys.readouterr().out
    assert "mnist-" in out and "wrote" in out
    with Image.open(sheet) as img:
        assert img.size[0] >= 3 * 20
    assert verify_card("digits", root) == []
    shard = next((tmp_path / "datasets" / "digits").glob("train-*.tar"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert any("sha256" in p for p in verify_card("digits", root))


def test_show_text_lists_documents(built_root, capsys):
    assert main(["data", "show", "text", "--root", str(built_root), "-n", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all("\t" in line for line in lines)


def test_missing_tool_says_how_to_install(tmp_path, capsys):
    with pytest.raises(MissingToolError, match=r"apt-get install -y no-such-package"):
        require_tool("omnitok-no-such-tool", "no-such-package", allow_apt=False)
    with pytest.raises(MissingToolError, match=r"apt-get install -y wordnet-base"):
        require_tool("wordnet", "wordnet-base", path=tmp_path / "nothing-here", allow_apt=False)
    assert main(["data", "build", "no-such-source", "--root", str(tmp_path)]) == 1
    assert "unknown data source" in capsys.readouterr().err
