import pytest

from tunesmith.chat import IGNORE, TemplateError, render_prompt, training_example

TWO_TURNS = [
    {"role": "system", "content": "Route."},
    {"role": "user", "content": "hi there"},
    {"role": "assistant", "content": '{"queue": "billing"}'},
    {"role": "user", "content": "again"},
    {"role": "assistant", "content": "ok then"},
]


def trained_text(tok, ex):
    return tok.decode([i for i, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])


def test_loss_is_on_every_assistant_turn_and_its_end_of_turn_token_only(tiny_tok):
    ex = training_example(tiny_tok, TWO_TURNS)
    assert trained_text(tiny_tok, ex) == '{"queue": "billing"}<|im_end|>ok then<|im_end|>'
    # labels equal the input ids exactly where they are not masked
    assert all(lab in (IGNORE, i) for i, lab in zip(ex.input_ids, ex.labels))
    assert ex.dropped_assistant_tokens == 0


def test_an_assistant_turn_of_weight_0_is_context_without_loss(tiny_tok):
    """OpenAI's fine-tuning format marks replies not to learn from with `weight: 0`; the reader dropped the key, so
    they were trained. Kept through the reader, such a turn is rendered but carries no loss, tool calls too."""
    from tunesmith.data.messages import RecordError, parse_message

    turns = [parse_message(m, i) for i, m in enumerate(TWO_TURNS)]
    turns[2] = parse_message({**TWO_TURNS[2], "weight": 0}, 2)
    turns[4] = parse_message({**TWO_TURNS[4], "weight": 1}, 4)
    assert turns[2]["weight"] == 0 and "weight" not in turns[4]
    ex = training_example(tiny_tok, turns)
    assert trained_text(tiny_tok, ex) == "ok then<|im_end|>"
    assert '{"queue": "billing"}' in tiny_tok.decode(ex.input_ids)  # still there as context
    call = {"type": "function", "function": {"name": "get_order", "arguments": {"id": 42}}}
    tools = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
    msgs = [TWO_TURNS[1], {"role": "assistant", "content": "", "tool_calls": [call], "weight": 0}, TWO_TURNS[4]]
    assert trained_text(tiny_tok, training_example(tiny_tok, msgs, tools)) == "ok then<|im_end|>"
    with pytest.raises(RecordError) as err:
        parse_message({**TWO_TURNS[2], "weight": 0.5}, 2)
    assert err.value.field == "messages[2].weight"


def test_truncation_is_counted(tiny_tok):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a long reply " * 20}]
    full = training_example(tiny_tok, msgs)
    cut = training_example(tiny_tok, msgs, max_len=len(full.input_ids) - 5)
    assert len(cut.input_ids) == len(full.input_ids) - 5
    lost = sum(lab != IGNORE for lab in full.labels[-5:])  # the final newline after <|im_end|> is not trained
    assert lost == 4
    assert cut.dropped_assistant_tokens == lost and cut.assistant_tokens == full.assistant_tokens - lost


def test_tool_calls_render_even_when_the_template_ignores_them(tiny_tok):
    tools = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
    msgs = [
        {"role": "user", "content": "where is 42"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_order", "arguments": {"id": 42}}}],
        },
        {"role": "tool", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "It shipped."},
    ]
    ex = training_example(tiny_tok, msgs, tools)
    text = trained_text(tiny_tok, ex)
    assert '"name": "get_order"' in text and '"arguments": {"id": 42}' in text and "It shipped." in text
    assert 'shipped"}' not in text.split("</tool_call>")[1].split("It shipped")[0]  # tool output is not trained
    assert "get_order" in render_prompt(tiny_tok, msgs[:1], tools)  # declared tools reach the prompt


def test_a_template_without_the_prefix_property_is_refused(tiny_tok):
    tok = tiny_tok.__class__.from_pretrained(tiny_tok.name_or_path)
    tok.chat_template = (
        "{% for m in messages|reverse %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    with pytest.raises(TemplateError):
        training_example(tok, msgs)


def test_prompt_loss_adds_the_user_turns_text_only(tiny_tok):
    """`train.prompt_loss`: the users' words carry loss too; the system prompt, the role headers and the end of a
    user turn do not, and `assistant_tokens` still counts the replies alone."""
    replies = training_example(tiny_tok, TWO_TURNS)
    both = training_example(tiny_tok, TWO_TURNS, prompt_loss=True)
    assert both.input_ids == replies.input_ids
    assert trained_text(tiny_tok, both) == 'hi there{"queue": "billing"}<|im_end|>againok then<|im_end|>'
    assert both.assistant_tokens == replies.assistant_tokens
    assert all(lab in (IGNORE, i) for i, lab in zip(both.input_ids, both.labels))


def test_prompt_loss_leaves_a_default_system_prompt_out(tiny_tok):
    """Without a system message a template may add its own (SmolLM2's does): the user's text is found after it."""
    tok = tiny_tok.__class__.from_pretrained(tiny_tok.name_or_path)
    tok.chat_template = (
        "{% if messages[0].role != 'system' %}<|im_start|>system\nSay hi there politely.<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    msgs = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "ok"}]
    ex = training_example(tok, msgs, prompt_loss=True)
    assert trained_text(tok, ex) == "hi thereok<|im_end|>"
    assert "Say hi there politely" in tok.decode(ex.input_ids)
