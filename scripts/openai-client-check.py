# The stock OpenAI Python client against omg-server on the built-in demo bundle: models,
# a chat completion with the masks extension, the same streamed, and a 400 as the client
# raises it. Start the server first, then run this from the repository root:
#
#   cargo run --release -p omg-server -- --addr 127.0.0.1:8080
#   pip install openai; python3 scripts/openai-client-check.py [BASE_URL]
import base64, openai
import sys
base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
client = openai.OpenAI(base_url=base + "/v1", api_key="unused")
print([m.id for m in client.models.list().data])
url = "data:image/png;base64," + base64.b64encode(open("omg-demo/assets/chelsea.png", "rb").read()).decode()
messages = [{"role": "user", "content": [{"type": "text", "text": "What is in the picture?"},
                                          {"type": "image_url", "image_url": {"url": url}}]}]
r = client.chat.completions.create(model=client.models.list().data[0].id, messages=messages, max_tokens=8,
                                   extra_body={"force_seg": 2})
print(repr(r.choices[0].message.content), r.choices[0].finish_reason, r.usage)
masks = r.model_extra.get("masks")
print("masks:", [(m["area"], m["bbox"]) for m in masks])
s = client.chat.completions.create(model=client.models.list().data[0].id, messages=messages, max_tokens=8, stream=True,
                                   extra_body={"force_seg": 2}, stream_options={"include_usage": True})
text, smasks = "", []
for chunk in s:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    smasks += (chunk.model_extra or {}).get("masks") or []
print("streamed", repr(text), [(m["area"], m["index"]) for m in smasks])
assert masks and text == r.choices[0].message.content
assert [m["rle"] for m in smasks] == [m["rle"] for m in masks]
try:
    client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("a request without an image was accepted")
except openai.BadRequestError as e:
    print("error:", e.status_code, e.body)
print("the stock client works unchanged")
