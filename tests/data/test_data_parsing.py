from ssae_utils.data.sources.insults import unescape_comment
from ssae_utils.data.sources.sympy_docs import docstring_prose


def test_unescape_single_and_double_escapes():
    assert unescape_comment('"i really don\'t understand.\\xa0 It seems"') == \
        "i really don't understand.  It seems"
    assert unescape_comment('"A\\\\xc2\\\\xa0majority\\\\nof them"') == "A majority\nof them"
    assert unescape_comment('"C\\xe1c b\\u1ea1n"') == "Các bạn"
    assert unescape_comment('"I\\\\\'m sick"') == "I'm sick"
    assert unescape_comment('"trailing backslash \\"') == 'trailing backslash \\'


def test_docstring_prose_drops_doctests():
    doc = ("Returns the energy.\n\nExamples\n========\n\n>>> from sympy import x\n>>> f(x)\n"
           "2*x\n\nMore prose.")
    out = docstring_prose(doc)
    assert out.startswith("Returns the energy.") and out.endswith("More prose.")
    assert ">>>" not in out and "2*x" not in out and "Examples" not in out
