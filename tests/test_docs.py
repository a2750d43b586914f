"""The documentation cannot drift from the code.

Every code block of every page of the site (``docs/``) and of the README runs, in
order, one namespace per page (``tests/docs_runner.py``), and every public name of
every public module has a docstring with a runnable example (the reference pages are
generated from them by mkdocstrings).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest
from docs_runner import blocks, run_page

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
PUBLIC_MODULES = (
    "softmaxkit",
    "softmaxkit.nn",
    "softmaxkit.sampling",
    "softmaxkit.torch",
    "softmaxkit.distributed",
    "softmaxkit.data",
    "softmaxkit.typing",
)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_page_code_blocks_run(page: Path) -> None:
    ran = run_page(page)
    # The reference pages are generated from the docstrings (run by --doctest-modules);
    # the benchmarks pages hold measured tables only.
    if "reference" not in page.parts and page.name not in {"benchmarks.md", "bench-lm.md"}:
        assert ran > 0, f"{_id(page)} has no code block that runs"


def test_every_public_module_has_a_reference_page() -> None:
    pages = {
        line.split(":::", 1)[1].strip()
        for path in (ROOT / "docs" / "reference").glob("*.md")
        for line in path.read_text().splitlines()
        if line.startswith(":::")
    }
    assert pages == set(PUBLIC_MODULES)


def _attribute_docstrings(module: object) -> dict[str, str]:
    """Docstrings of module-level constants: the string literal right after the assignment."""
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    out = {}
    for node, after in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = inspect.cleandoc(after.value.value)
    return out


def _public_names() -> list[tuple[str, str]]:
    return [(m, n) for m in PUBLIC_MODULES for n in importlib.import_module(m).__all__]


@pytest.mark.parametrize(("module_name", "name"), _public_names(), ids="{0[0]}.{0[1]}".format)
def test_public_name_has_a_docstring_with_an_example(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        doc = inspect.getdoc(obj)
    else:  # a constant, documented where it is defined (a public module may re-export it)
        homes = [module] + [
            m
            for key, m in sys.modules.items()
            if key.startswith("softmaxkit._") and getattr(m, name, None) is obj
        ]
        doc = next((d for m in homes if (d := _attribute_docstrings(m).get(name))), None)
    assert doc and doc.strip(), f"{module_name}.{name} has no docstring"
    summary = doc.strip().splitlines()[0]
    assert len(summary) > 10, f"{module_name}.{name}: the summary line says too little: {summary!r}"
    assert "Examples\n--------" in doc and ">>>" in doc.split("Examples\n--------", 1)[1], (
        f"{module_name}.{name} has no runnable example (an `Examples` section with `>>>`)"
    )


def test_runner_reads_fences_and_runs_console_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n>>> x = 2\n```\n\n```python\ny = x + 1\n```\n\n"
        "```python\n>>> y\n3\n```\n\n```text\nnot run\n```\n\n"
        "```console\n$ softmaxkit pmf 1 3\n...0.25...\n```\n"
    )
    assert [b.lang for b in blocks(page.read_text())] == ["python"] * 3 + ["text", "console"]
    assert run_page(page) == 4
    page.write_text("```python\n>>> 1 + 1\n3\n```\n")
    with pytest.raises(AssertionError, match="1 \\+ 1"):
        run_page(page)
    page.write_text("```console\n$ softmaxkit pmf 1 3\n0.5\n```\n")
    with pytest.raises(AssertionError, match="softmaxkit pmf 1 3"):
        run_page(page)
