import json

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import write_jsonl
from tunesmith.cli import app
from tunesmith.data.audit import run_checks
from tunesmith.data.dedup import dedup_records, near_duplicate_clusters
from tunesmith.data.findings import Code
from tunesmith.data.records import Record
from tunesmith.data.split import leakage, reply_label, split_records

BASE = (
    "Hi, I was charged twice for my March Lumen Plus renewal and I would like the second charge refunded "
    "to the same card please, order number 4471"
)
NEAR = BASE + ", thanks a lot"  # 25 of 28 word 3-shingles shared: Jaccard ~0.89
OTHER = [
    "My doorbell keeps going offline every night after the firmware update",
    "Where is my parcel? It was due on Monday and tracking has not moved",
    "Can I add a second user to my account so my partner can see the cameras",
    "Do your thermostats work with a two-stage heat pump before I buy one",
]


def rec(user, reply, line):
    return Record([{"role": "user", "content": user}, {"role": "assistant", "content": reply}], "d.jsonl", line)


def codes(records, **kw):
    return [(f.code, f.where) for f in run_checks(records, **kw).findings]


def test_exact_duplicate_is_found_by_input_and_output_together():
    found = codes([rec(BASE, "refund", 1), rec(BASE.upper() + "!", "Refund.", 2), rec(OTHER[0], "tech", 3)])
    assert (Code.DUPLICATE_EXACT, "d.jsonl:2") in found
    assert not any(c == Code.DUPLICATE_EXACT for c, w in codes([rec(OTHER[0], "a", 1), rec(OTHER[1], "a", 2)]))


def test_conflicting_answers_to_the_same_input():
    found = codes([rec(BASE, '{"queue": "billing"}', 1), rec(BASE, '{"queue": "sales"}', 2)])
    assert (Code.CONFLICTING_ANSWER, "d.jsonl:2") in found
    assert Code.NEAR_DUPLICATE not in [c for c, _ in found]  # reported once, as a conflict


def test_near_duplicates_and_their_threshold():
    records = [rec(BASE, "a", 1), rec(NEAR, "a", 2)] + [rec(t, "b", 10 + i) for i, t in enumerate(OTHER)]
    found = codes(records)
    assert (Code.NEAR_DUPLICATE, "d.jsonl:2") in found
    assert sum(c == Code.NEAR_DUPLICATE for c, _ in found) == 1
    assert Code.NEAR_DUPLICATE not in [c for c, _ in codes(records, near_dup_threshold=0.99)]


def test_split_keeps_near_duplicate_clusters_together_and_leakage_finds_twins():
    records = []
    for i in range(60):
        text = f"{OTHER[i % 4]} (case {i}, reference {i * 37 % 101})"
        records.append(rec(text + " I really need help with this today", json.dumps({"q": str(i % 3)}), i + 1))
    for i in range(10):  # ten planted twins of ten records
        records.append(rec(records[i].messages[0]["content"] + " thanks", records[i].reply, 100 + i))
    label = lambda r: reply_label(r, "q")
    clusters = near_duplicate_clusters(records, 0.8)
    assert len(set(clusters)) == 60
    train, held = split_records(records, 0.3, 3, label, clusters)
    assert leakage(train, held, 0.8) == []
    naive_train, naive_held = split_records(records, 0.3, 3, label)  # exact inputs only: twins can straddle
    leaks = leakage(naive_train, naive_held, 0.8)
    assert leaks and all(f.code == Code.LEAKAGE for f in leaks)


def test_dedup_keeps_the_first_and_says_why(tmp_path):
    records = [rec(BASE, "a", 1), rec(BASE, "a", 2), rec(NEAR, "a", 3), rec(OTHER[0], "b", 4)]
    kept, dropped = dedup_records(records)
    assert [r.line for r in kept] == [1, 4]
    assert [(r.line, why.split(" of ")[0].split(" as ")[0]) for r, why in dropped] == [
        (2, "exact duplicate"),
        (3, "same or near-duplicate input"),
    ]
    assert [r.line for r in dedup_records(records, near=False)[0]] == [1, 3, 4]

    src = write_jsonl(tmp_path / "d.jsonl", [r.to_json() | {"meta": {}} for r in records])
    before = src.read_text()
    res = CliRunner().invoke(app, ["data", "dedup", str(src), "--out", str(tmp_path / "clean.jsonl")])
    assert res.exit_code == 0 and "kept 2, dropped 2" in res.output and src.read_text() == before
    assert len((tmp_path / "clean.jsonl").read_text().splitlines()) == 2


def test_batched_signatures_equal_datasketch():
    from datasketch import MinHash

    from tunesmith.data.dedup import NUM_PERM, minhash_signatures, shingle_hashes, word_hashes, words_of

    sets = [shingle_hashes(word_hashes(words_of(t))) for t in [BASE, NEAR, "hi", ""] + OTHER]
    ours = minhash_signatures(sets)
    for row, shingles in zip(ours, sets):
        m = MinHash(num_perm=NUM_PERM, hashfunc=int, scheme="affine32")
        m.update_batch(list(shingles))
        assert (row == m.hashvalues).all()


def test_operators_and_emoji_make_different_inputs_and_prose_punctuation_does_not():
    from tunesmith.data.split import drop_twins

    sums = [("What is 12 + 7?", "19"), ("What is 12 - 7?", "5"), ("What is 12 * 7?", "84"), ("What is 12 / 4?", "3")]
    faces = [("😀", "glad you are happy"), ("😢", "sorry to hear that")]
    records = [rec(q, a, i + 1) for i, (q, a) in enumerate(sums + faces)]
    assert codes(records) == []  # no conflicting answers, no duplicates
    assert dedup_records(records) == (records, [])
    test = [rec("What is 12 - 7?", "5", 1)]
    train, leaks = drop_twins(records, test)
    assert [r.line for r in train] == [1, 3, 4, 5, 6] and len(leaks) == 1  # "12 + 7" stays: only "12 - 7" leaves

    same = [rec("Can I top-up by card?", "yes", 1), rec("can i top up by card", "yes", 2), rec("£1 fee?", "a", 3)]
    same.append(rec("€1 fee", "a", 4))  # a currency sign is a currency sign
    assert [r.line for r, _ in dedup_records(same)[1]] == [2, 4]


def test_near_duplicates_in_scripts_written_without_spaces_are_found_and_kept_on_one_side():
    zh = "我上周在你们的网站上买了一台咖啡机，但是到现在还没有收到，订单号是四四七一，请帮我查一下物流"
    ja = "先週そちらのサイトでコーヒーメーカーを買いましたが、まだ届いていません。配送状況を確認してください"
    th = "ฉันสั่งเครื่องชงกาแฟจากเว็บไซต์ของคุณเมื่อสัปดาห์ที่แล้วแต่ยังไม่ได้รับเลยช่วยตรวจสอบการจัดส่งให้หน่อย"
    others = ["我想取消我的会员资格并且退还上个月的费用", "你们的门铃摄像头晚上总是离线，怎么解决？"]
    records = [
        rec(zh, "物流", 1),
        rec(zh + "。谢谢！", "物流", 2),
        rec(ja, "配送", 3),
        rec(ja + "よろしくお願いします", "配送", 4),
        rec(th, "จัดส่ง", 5),
        rec(th + "ขอบคุณครับ", "จัดส่ง", 6),
    ]
    records += [rec(t, "其他", 7 + i) for i, t in enumerate(others)]
    found = codes(records)
    assert [w for c, w in found if c == Code.NEAR_DUPLICATE] == ["d.jsonl:2", "d.jsonl:4", "d.jsonl:6"]
    clusters = near_duplicate_clusters(records)
    assert clusters[0] == clusters[1] and clusters[2] == clusters[3] and clusters[4] == clusters[5]
    assert len(set(clusters)) == 5
    assert leakage(records[:1], records[1:2]) and not leakage(records[:1], records[6:])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127) | st.sampled_from("‘’“”–—…€"), max_size=40))
def test_the_ascii_fast_path_reads_text_as_the_full_pattern_does(text):
    from tunesmith.data import dedup

    assert dedup.words_of(text) == dedup._TOKEN.findall(dedup._CURRENCY.sub("$", text.lower()))
