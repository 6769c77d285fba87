// Server-Sent Events read from a fetch body (EventSource cannot POST): the `data` of each event,
// multi-line data joined with "\n", until the stream ends or sends `data: [DONE]`. Lines may be
// split anywhere across chunks, and may end in "\n", "\r\n" or "\r" (the SSE spec's three).

export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // a lone "\r" at the end may be the first half of "\r\n": keep it for the next chunk
      const lines = buffer.split(done ? /\r\n|\r|\n/ : /\r\n|\r(?!$)|\n/);
      buffer = done ? "" : (lines.pop() ?? "");
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) {
            const payload = data.join("\n");
            data = [];
            if (payload === "[DONE]") return;
            yield payload;
          }
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line[5] === " " ? 6 : 5));
        } // comments (":"), event, id and retry fields carry nothing the page uses
      }
      if (done) {
        if (data.length > 0 && data.join("\n") !== "[DONE]") yield data.join("\n");
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
