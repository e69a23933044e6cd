"""Pays a Coinslot paid LLM API with the official `openai` SDK, unmodified: the Cashu token
is the API key. Run by examples/paid-llm/tests/sdk.rs with the server's base URL and the key;
prints what each completion reported, for the test to check against the balance."""

import sys

import openai


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)

    models = [m.id for m in client.models.list()]
    assert "echo-small" in models, models

    raw = client.chat.completions.with_raw_response.create(
        model="echo-small",
        messages=[{"role": "user", "content": "hello from the python sdk"}],
    )
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("echo:"), answer
    print("USAGE", answer.usage.prompt_tokens, answer.usage.completion_tokens, "echo-small")
    print("BALANCE", raw.headers.get("x-cashu-balance"))

    # Streamed, without asking for the usage: coinslotd asks the upstream for it, and the
    # SDK hands over the last chunk that carries it.
    stream = client.chat.completions.create(
        model="echo-large",
        messages=[{"role": "user", "content": "stream these words back to me"}],
        stream=True,
    )
    text, usage = "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "echo: stream these words back to me", text
    assert usage is not None, "no usage in the stream"
    print("USAGE", usage.prompt_tokens, usage.completion_tokens, "echo-large")

    # An unknown model is refused before anything is paid.
    try:
        client.chat.completions.create(
            model="gpt-none", messages=[{"role": "user", "content": "hi"}]
        )
        raise SystemExit("an unknown model was served")
    except openai.BadRequestError as err:
        assert "unknown model" in str(err), err

    print("openai python flow ok")


if __name__ == "__main__":
    main()
