"""Progress reports: deprogressapi's tree format, sending, per-request copies."""

from __future__ import annotations

import json
import subprocess

import pytest

from dasf_geo.protocol.progress import ProgressReport
from tests.conftest import timeout


def test_without_a_sender_nothing_is_sent():
    report = ProgressReport(step_message="local run")
    with report:
        report.create_subreport("a", submit=True).complete()
    assert report.status == "success"


def test_submissions_send_the_whole_tree_from_any_node():
    sent: list[tuple[dict, str]] = []
    report = ProgressReport(step_message="top", steps=2)
    report.attach(lambda text, status: sent.append((json.loads(text), status)))
    child = report.create_subreport("first")
    grandchild = child.create_subreport("inner", submit=True)
    grandchild.complete()
    assert [status for _, status in sent] == ["running", "running"]
    tree = sent[-1][0]
    assert tree["report_id"] == "root" and tree["step_message"] == "top"
    assert tree["children"][0]["children"][0] == {
        "report_type": "tree",
        "report_id": "root.0.0",
        "status": "success",
        "step_message": "inner",
        "steps": 0,
        "children": [],
    }


def test_an_error_inside_the_block_marks_the_report():
    sent: list[str] = []
    report = ProgressReport(step_message="x")
    report.attach(lambda text, status: sent.append(status))
    with pytest.raises(RuntimeError), report:
        raise RuntimeError("boom")
    assert sent == ["running", "error"]


def test_a_deep_copy_keeps_the_tree_and_leaves_the_original_alone():
    original = ProgressReport(step_message="default")
    original.create_subreport("kept")
    copy = original.model_copy(deep=True)
    sent: list[dict] = []
    copy.attach(lambda text, status: sent.append(json.loads(text)))
    copy.children[0].create_subreport("new", submit=True)
    assert len(sent) == 1 and sent[0]["children"][0]["children"][0]["step_message"]
    assert original.children[0].children == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", "done", "Input should be 'running', 'success' or 'error'"),
        ("steps", -1, "Input should be greater than or equal to 0"),
        ("report_type", "basic", "Input should be 'tree'"),
    ],
)
def test_bad_report_fields_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        ProgressReport(**{field: value})


@pytest.mark.interop
@pytest.mark.slow
def test_deprogressapi_reads_our_report_and_we_read_theirs():
    from tests.interop.peers import peer_python

    python = peer_python("demessaging")  # its venv has deprogressapi
    ours = ProgressReport(step_message="ours", steps=1)
    ours.create_subreport("child").complete()
    code = (
        "import json, sys\n"
        "from deprogressapi import ProgressReport\n"
        "from deprogressapi.base import BaseReport\n"
        "parsed = BaseReport.from_payload(sys.stdin.read())\n"
        "assert type(parsed).__name__ == 'ProgressReport', type(parsed)\n"
        "theirs = ProgressReport(step_message='theirs', steps=2)\n"
        "theirs.create_subreport(step_message='sub')\n"
        "print(json.dumps([json.loads(parsed.model_dump_json()),\n"
        "                  json.loads(theirs.model_dump_json())]))\n"
    )
    result = subprocess.run(
        [str(python), "-c", code],
        input=ours.model_dump_json(),
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert result.returncode == 0, result.stderr
    parsed, theirs = json.loads(result.stdout)
    assert parsed["step_message"] == "ours"
    assert parsed["children"][0]["status"] == "success"
    back = ProgressReport.model_validate(
        {k: v for k, v in theirs.items() if k != "settings"}
    )
    assert back.step_message == "theirs" and back.children[0].step_message == "sub"
