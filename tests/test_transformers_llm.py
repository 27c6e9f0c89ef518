"""TransformersLLM for real, on CPU, with a tiny model the test builds itself (a 2-layer GPT-2
with random weights and a word-level tokenizer with a chat template, saved to a temporary
folder; nothing is downloaded). Next to distilabel 1.5.3's TransformersLLM on the same model.

Optional tier: skipped unless torch and transformers are installed (`make test-engines`
installs them and runs this file with `HF_HUB_OFFLINE=1`).
"""

import os
import pickle
from pathlib import Path
from typing import Any, Iterator

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import distilabel.models.llms as dl  # noqa: E402

import distilabel_rs.models.llms as rs  # noqa: E402

WORDS = ["<unk>", "<pad>", "</s>", "user", "assistant", "system", ":", "hello", "there"]
WORDS += [f"w{i}" for i in range(40)]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)
CHAT = [{"role": "user", "content": "hello there"}]
CHAT2 = [{"role": "system", "content": "w1 w2"}, {"role": "user", "content": "w3 hello"}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    os.environ["HF_HUB_OFFLINE"] = "1"
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", eos_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = transformers.GPT2Config(
        vocab_size=len(WORDS),
        n_positions=64,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=2,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    yield str(folder)


def loaded(library: Any, model: str, **kwargs: Any) -> Any:
    llm = library.TransformersLLM(model=model, torch_dtype="float32", token=None, **kwargs)
    llm.load()
    return llm


def test_generations_match_distilabel_on_the_same_model(tiny_model: str) -> None:
    ours, theirs = loaded(rs, tiny_model), loaded(dl, tiny_model)
    kwargs = {"num_generations": 2, "max_new_tokens": 5, "temperature": 0.7}
    torch.manual_seed(1)
    got = ours.generate([CHAT, CHAT2], **kwargs)
    torch.manual_seed(1)
    expected = theirs.generate([CHAT, CHAT2], **kwargs)
    assert got == expected
    assert [len(output["generations"]) for output in got] == [2, 2]
    assert got[0]["statistics"]["input_tokens"] == [2]  # "hello there"
    assert got[1]["statistics"]["input_tokens"] == [4]
    for output in got:
        for text, count in zip(
            output["generations"], output["statistics"]["output_tokens"], strict=True
        ):
            assert set(text.split()) <= set(WORDS)
            assert count == len(text.split()) <= 5
    # The tokenizer had no padding token: the end-of-sequence token stands in.
    assert ours._pipeline.tokenizer.pad_token == "</s>"


def test_greedy_generation_is_deterministic_and_magpie_applies(tiny_model: str) -> None:
    llm = loaded(rs, tiny_model, use_magpie_template=True, magpie_pre_query_template="qwen2")
    first = llm.generate([CHAT2], do_sample=False, max_new_tokens=4)
    again = llm.generate([CHAT2], do_sample=False, max_new_tokens=4)
    assert first == again
    assert llm.prepare_input(CHAT) == "user : hello there assistant : "  # ends with a user turn
    assistant_last = [*CHAT, {"role": "assistant", "content": "w5"}]
    assert llm.prepare_input(assistant_last).endswith("assistant : <|im_start|>user\n")


def test_chat_template_field_and_hidden_states(tiny_model: str) -> None:
    llm = loaded(rs, tiny_model, chat_template="{{ messages[-1]['content'] }}")
    assert llm.prepare_input(CHAT2) == "w3 hello"
    states = llm.get_last_hidden_states([CHAT, CHAT2])
    assert [state.shape for state in states] == [(2, 16), (2, 16)]
    reference = loaded(dl, tiny_model, chat_template="{{ messages[-1]['content'] }}")
    for mine, theirs in zip(states, reference.get_last_hidden_states([CHAT, CHAT2]), strict=True):
        assert (mine == theirs).all()


def test_pickles_after_unload_and_runs_in_a_distilabel_task(tiny_model: str) -> None:
    from distilabel.steps.tasks import TextGeneration

    llm = rs.TransformersLLM(model=tiny_model, torch_dtype="float32")
    task = TextGeneration(llm=llm, name="generate")
    task.load()
    torch.manual_seed(3)
    rows = next(task.process([{"instruction": "hello there"}]))
    assert rows[0]["model_name"] == tiny_model
    assert isinstance(rows[0]["generation"], str)
    task.unload()
    copy = pickle.loads(pickle.dumps(rs.TransformersLLM(model=tiny_model)))
    assert copy.model == tiny_model and Path(copy.model).is_dir()
