"""Untrusted names in Markdown exports stay literal text: no image, link or HTML can come of them."""
import re

from core.output import md_text


def test_md_text_neutralises_images_links_and_html():
    hostile = "evil![x](http://attacker.example/p.png)<img src=x onerror=alert(1)>|cell\nnext"
    out = md_text(hostile)
    unescaped = re.findall(r"(?<!\\)[!\[\]()<>|`*]", out)
    assert unescaped == []
    assert "\n" not in out
    assert out.replace("\\", "") == " ".join(hostile.split())  # nothing lost for a reader
