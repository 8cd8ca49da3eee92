"""Training views of corpus rows: the `cpt` (text), `sft` (prompt/completion) and `messages` configs."""
from __future__ import annotations

import pyarrow as pa
from mathforge.builders import prompts

SFT_PROMPT = prompts.ALPACA
SFT_COMPLETION = " {{ solution }}"
CPT_TEXT = "{{ question }}\n\n{{ solution }}"
THINK = "<think>\n{reasoning}\n</think>\n\n{solution}"  # publish.reasoning: think (open-r1 / OpenThoughts form)
ROW_FIELDS = ("problem_id", "question", "solution", "final_answer", "reference_answer", "method", "model",
              "reasoning")
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMAS = {
    "cpt": pa.schema([("text", pa.string()), ("problem_id", pa.string()), ("method", pa.string())]),
    "sft": pa.schema([("prompt", pa.string()), ("completion", pa.string()), ("problem_id", pa.string()),
                      ("method", pa.string())]),
    "messages": pa.schema([("messages", pa.list_(MESSAGE)), ("problem_id", pa.string()), ("method", pa.string())]),
}


def templates_of(publish) -> dict[str, str | None]:
    t = publish.templates
    return {"prompt": t.prompt or SFT_PROMPT, "completion": t.completion or SFT_COMPLETION,
            "text": t.text or CPT_TEXT, "system": t.system}


def check_templates(publish, where) -> None:
    """Each template must compile and use only row fields (checked before a build does any work)."""
    row = {name: "x" for name in ROW_FIELDS}
    for name, text in templates_of(publish).items():
        if text is not None:
            file, line, key = where("publish", "templates", name)
            prompts.check_template(text, file, key, row, line=line)


def training_row(columns: dict[str, list], i: int, reasoning: str) -> dict:
    """Row i's template fields; with `reasoning: think` its solution carries the reasoning before it in
    `<think>` tags (rows without reasoning keep the solution alone). `reasoning` is "" where a row has none."""
    row = {name: columns[name][i] for name in ROW_FIELDS}
    row["reasoning"] = row["reasoning"] or ""
    if reasoning == "think" and row["reasoning"]:
        row["solution"] = THINK.format(reasoning=row["reasoning"], solution=row["solution"])
    return row


def trained_rows(columns: dict[str, list], publish) -> list[int]:
    """Rows that go into the training configs: a published method and not flagged `contaminated`."""
    keep = set(publish.methods)
    flags = columns.get("contaminated") or [None] * len(columns["problem_id"])
    return [i for i, (method, flag) in enumerate(zip(columns["method"], flags)) if method in keep and flag is not True]


def training_views(columns: dict[str, list], publish) -> dict[str, dict[str, list]]:
    """cpt / sft / messages columns for the rows whose method the recipe publishes, in corpus order; rows that
    decontamination flagged stay in the default config only."""
    templates = templates_of(publish)
    views = {name: {field: [] for field in schema.names} for name, schema in SCHEMAS.items()}
    for i in trained_rows(columns, publish):
        row = training_row(columns, i, publish.reasoning)
        prompt = prompts.render(templates["prompt"], row)
        completion = prompts.render(templates["completion"], row)
        base = {"problem_id": row["problem_id"], "method": row["method"]}
        cpt_text = columns["cpt_text"][i] if "cpt_text" in columns else None
        _add(views["cpt"], text=cpt_text or prompts.render(templates["text"], row), **base)
        _add(views["sft"], prompt=prompt, completion=completion, **base)
        messages = ([{"role": "system", "content": prompts.render(templates["system"], row)}]
                    if templates["system"] else [])
        messages += [{"role": "user", "content": row["question"]},
                     {"role": "assistant", "content": row["solution"]}]
        _add(views["messages"], messages=messages, **base)
    return views


def _add(view: dict[str, list], **values) -> None:
    for name, value in values.items():
        view[name].append(value)
