// Pays a Coinslot paid LLM API with the official `openai` npm SDK, unmodified: the Cashu
// token is the API key. Run by examples/paid-llm/tests/sdk.rs with the server's base URL and
// the key; prints what each completion reported, for the test to check against the balance.
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const models = [];
for await (const model of client.models.list()) models.push(model.id);
if (!models.includes("echo-small")) throw new Error(`models: ${models}`);

const { data: answer, response } = await client.chat.completions
  .create({
    model: "echo-small",
    messages: [{ role: "user", content: "hello from the node sdk" }],
  })
  .withResponse();
if (!answer.choices[0].message.content.startsWith("echo:")) throw new Error(JSON.stringify(answer));
console.log("USAGE", answer.usage.prompt_tokens, answer.usage.completion_tokens, "echo-small");
console.log("BALANCE", response.headers.get("x-cashu-balance"));

// Streamed, asking for the usage as OpenAI documents it.
const stream = await client.chat.completions.create({
  model: "echo-large",
  messages: [{ role: "user", content: "stream these words back to me" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  for (const choice of chunk.choices) text += choice.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
if (text !== "echo: stream these words back to me") throw new Error(`streamed: ${text}`);
if (!usage) throw new Error("no usage in the stream");
console.log("USAGE", usage.prompt_tokens, usage.completion_tokens, "echo-large");

try {
  await client.chat.completions.create({ model: "gpt-none", messages: [{ role: "user", content: "hi" }] });
  throw new Error("an unknown model was served");
} catch (err) {
  if (!(err instanceof OpenAI.BadRequestError) || !String(err.message).includes("unknown model")) throw err;
}
console.log("openai node flow ok");
