import json

from tunesmith.data.audit import run_checks
from tunesmith.data.coverage import reply_behavior
from tunesmith.data.findings import Code
from tunesmith.data.records import Record
from tunesmith.data.split import reply_label


def rec(user, reply, i, tags=()):
    return Record(
        [{"role": "user", "content": user}, {"role": "assistant", "content": reply}], "d.jsonl", i, tags=list(tags)
    )


def codes(records, task_type="chat", field=None):
    report = run_checks(records, task_type=task_type, label_of=lambda r: reply_label(r, field))
    return {f.code for f in report.findings if f.where == "dataset"}


def test_reply_behaviors():
    assert reply_behavior("I'm sorry, I can't help with that.") == "refuse"
    assert reply_behavior('{"queue": "escalation", "priority": "urgent"}') == "escalate"
    assert reply_behavior("Could you share your order number?") == "clarify"
    assert reply_behavior("Your parcel ships tomorrow.") == "answer"


def test_tidy_happy_path_data_is_flagged_and_realistic_data_is_not():
    tidy = [rec(f"Please tell me the status of order number {i}.", f"Order {i} ships tomorrow.", i) for i in range(40)]
    assert {Code.LOW_DATA, Code.NO_PUSHBACK, Code.TOO_CLEAN, Code.FEW_EDGE_CASES} <= codes(tidy)
    real = [
        rec(f"wheres my order {i}??", f"Order {i} ships tomorrow.", i, ["typo"])
        if i % 2
        else rec(f"Status of order {i}.", f"Order {i} ships tomorrow.", i)
        for i in range(50)
    ]
    real += [
        rec(f"hack my neighbour's cam {i}", "I can't help with that.", 100 + i, ["out_of_scope"]) for i in range(10)
    ]
    assert codes(real) == set()


def test_edge_case_tags_and_thin_slices():
    rows = [rec(f"where is order {i}", f"Order {i} ships tomorrow.", i, ["typo"] if i < 12 else []) for i in range(60)]
    rows += [rec(f"cancel it all now {i}!!", "Escalating to a human agent.", 100 + i, ["angry"]) for i in range(3)]
    found = [f for f in run_checks(rows, task_type="chat").findings if f.code == Code.THIN_SLICE]
    assert len(found) == 1 and "tag 'angry' has 3 example(s)" in found[0].message
    assert Code.FEW_EDGE_CASES not in codes(rows)  # 15 of 63 tagged
    untagged = [rec(f"where is order {i}", f"Order {i} ships tomorrow.", i) for i in range(57)] + rows[-3:]
    assert Code.FEW_EDGE_CASES in codes(untagged)  # 3 of 60 tagged: happy paths only


def test_class_imbalance_for_labels():
    rows = [rec(f"message {i}", json.dumps({"queue": "billing"}), i) for i in range(60)]
    rows += [rec(f"other {i}", json.dumps({"queue": "shipping"}), 100 + i) for i in range(4)]
    found = run_checks(rows, task_type="json", label_of=lambda r: reply_label(r, "queue")).findings
    imbalance = [f for f in found if f.code == Code.CLASS_IMBALANCE]
    assert len(imbalance) == 1 and "'shipping' has 4 examples" in imbalance[0].message


def test_labels_of_a_classification_task_are_not_asked_to_push_back():
    rows = [rec(f"where is my card {i}", ["card_arrival", "lost_card"][i % 2], i) for i in range(40)]
    assert Code.NO_PUSHBACK in codes(rows, task_type="chat")  # the same replies as chat: no pushback at all
    assert Code.NO_PUSHBACK not in codes(rows, task_type="classification")
