"""A note at the top of every notebook page: where its source is and how to run it with a kernel."""

from __future__ import annotations

import os

from docutils import nodes


def add_source_note(app, doctree: nodes.document) -> None:
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    name = docname.split("/", 1)[1] + ".ipynb"
    mode = "quick mode (FLOWLIB_QUICK=1: short training runs)" if app.config.flowlib_quick else "full mode"
    # html_sourcelink_suffix = "" makes _sources/ hold the notebook file itself, without outputs
    download = nodes.reference("", name, refuri=f"../_sources/notebooks/{name}", internal=False)
    para = nodes.paragraph()
    para += nodes.Text("This page is the notebook ")
    para += nodes.literal(text=f"notebooks/{name}")
    para += nodes.Text(f" of the course repository, executed in {mode} when the site was built. Download it: ")
    para += download
    para += nodes.Text(". To run it yourself, with live widgets, clone the repository and run ")
    para += nodes.literal(text="make lab")
    para += nodes.Text(" (it creates the environment and opens JupyterLab on notebooks/).")
    note = nodes.note("", para, classes=["flowlib-source-note"])
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, note)
    else:
        section.insert(1, note)  # after the title


def setup(app):
    app.add_config_value("flowlib_quick", os.environ.get("FLOWLIB_QUICK", "") not in {"", "0"}, "env")
    app.connect("doctree-read", add_source_note)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
