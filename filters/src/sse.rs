//! Incremental Server-Sent Events parser (pure, no I/O: the proxy feeds it
//! upstream body chunks; the fuzz target `sse` checks it).
//!
//! Upstream body chunks do not follow event boundaries, so the relay feeds
//! every chunk here and gets back the events that completed. Memory is
//! bounded: an event larger than the limit is skipped, not buffered.

/// One complete SSE event (only the fields mcpgate inspects).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Parser state carried across chunks.
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_fields: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    overflowed: bool,
    last_was_cr: bool,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            current: SseEvent::default(),
            has_fields: false,
            event_bytes: 0,
            max_event_bytes,
            overflowed: false,
            last_was_cr: false,
        }
    }

    /// Feeds a chunk; calls `on_event` for each event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        for &b in chunk {
            if self.last_was_cr && b == b'\n' {
                self.last_was_cr = false;
                continue; // second half of a CRLF
            }
            self.last_was_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.end_line(&mut on_event);
                continue;
            }
            self.event_bytes += 1;
            if self.event_bytes > self.max_event_bytes {
                self.overflowed = true;
                self.line.clear();
                continue;
            }
            self.line.push(b);
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if self.line.is_empty() {
            let event = std::mem::take(&mut self.current);
            if self.has_fields && !self.overflowed {
                on_event(event);
            }
            self.has_fields = false;
            self.overflowed = false;
            self.event_bytes = 0;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if self.overflowed || line.first() == Some(&b':') {
            return; // skipped event or comment
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
            }
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            _ => {}
        }
        self.has_fields = true;
        self.line = line;
        self.line.clear();
    }

    fn has_data(&self) -> bool {
        !self.current.data.is_empty()
    }
}

/// A piece of an SSE stream cut at event boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// One whole event's bytes, its closing blank line included.
    Event(Vec<u8>),
    /// An event longer than the limit: its bytes were dropped unread.
    Oversize,
}

/// Cuts an SSE byte stream into whole events, so that each can be judged
/// and then sent on (as it came, or rewritten). Holds at most one event of
/// at most `max_event_bytes`; a longer event is reported once and skipped.
pub struct SseFramer {
    buf: Vec<u8>,
    max_event_bytes: usize,
    at_line_start: bool,
    last_was_cr: bool,
    /// The event ended at a CR, which may be the first half of a CRLF: it
    /// is emitted with the next byte if that is the LF, before it otherwise.
    ended_at_cr: bool,
    skipping: bool,
}

impl SseFramer {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_event_bytes,
            at_line_start: true,
            last_was_cr: false,
            ended_at_cr: false,
            skipping: false,
        }
    }

    /// Feeds a chunk; calls `out` for each event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut out: impl FnMut(Framed)) {
        for &b in chunk {
            if std::mem::take(&mut self.ended_at_cr) {
                if b == b'\n' {
                    self.push(b, &mut out);
                    self.end_event(&mut out);
                    continue;
                }
                self.end_event(&mut out);
            }
            if self.last_was_cr && b == b'\n' {
                // Second half of a CRLF: the line already ended at the CR.
                self.last_was_cr = false;
                self.push(b, &mut out);
                continue;
            }
            self.last_was_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                if self.at_line_start {
                    self.push(b, &mut out);
                    if b == b'\r' {
                        self.ended_at_cr = true;
                        self.last_was_cr = false;
                    } else {
                        self.end_event(&mut out);
                    }
                    continue;
                }
                self.at_line_start = true;
            } else {
                self.at_line_start = false;
            }
            self.push(b, &mut out);
        }
    }

    /// At the end of the stream: an event that ended at its last byte is
    /// emitted; what is left of an unterminated one is returned as it came.
    pub fn finish(&mut self, mut out: impl FnMut(Framed)) -> Option<Vec<u8>> {
        if std::mem::take(&mut self.ended_at_cr) {
            self.end_event(&mut out);
        }
        let rest = std::mem::take(&mut self.buf);
        (!self.skipping && !rest.is_empty()).then_some(rest)
    }

    fn push(&mut self, b: u8, out: &mut impl FnMut(Framed)) {
        if self.skipping {
            return;
        }
        if self.buf.len() >= self.max_event_bytes {
            self.buf = Vec::new();
            self.skipping = true;
            out(Framed::Oversize);
            return;
        }
        self.buf.push(b);
    }

    fn end_event(&mut self, out: &mut impl FnMut(Framed)) {
        self.at_line_start = true;
        if std::mem::take(&mut self.skipping) {
            return;
        }
        out(Framed::Event(std::mem::take(&mut self.buf)));
    }
}

/// Writes one event: its `event:` and `id:` fields, then `data` as one
/// `data:` line per line, then the blank line.
pub fn write_event(event: Option<&str>, id: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(i) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(i.as_bytes());
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e));
        }
        out
    }

    #[test]
    fn events_split_across_chunks() {
        let evs = parse(
            &[
                b"id: 1\nda",
                b"ta: {\"a\":1}\n",
                b"\nevent: message\r\ndata: x\r\n\r\n",
            ],
            1024,
        );
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].id.as_deref(), Some("1"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].event.as_deref(), Some("message"));
        assert_eq!(evs[1].data, "x");
    }

    #[test]
    fn comments_priming_and_oversize() {
        let evs = parse(&[b": keepalive\n\nid: p\ndata:\n\n"], 1024);
        assert_eq!(
            evs,
            vec![SseEvent {
                id: Some("p".into()),
                event: None,
                data: String::new()
            }]
        );
        let evs = parse(&[b"data: 0123456789\n\ndata: ok\n\n"], 8);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, "ok");
    }

    fn frame(chunks: &[&[u8]], max: usize) -> (Vec<Framed>, Option<Vec<u8>>) {
        let mut f = SseFramer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, |e| out.push(e));
        }
        let rest = f.finish(|e| out.push(e));
        (out, rest)
    }

    fn ev(s: &str) -> Framed {
        Framed::Event(s.as_bytes().to_vec())
    }

    #[test]
    fn framer_cuts_at_blank_lines_across_chunks() {
        let (out, rest) = frame(
            &[
                b"event: message\nid: 1\nda",
                b"ta: {}\n",
                b"\ndata: 2\n\ndata: 3",
            ],
            1024,
        );
        assert_eq!(
            out,
            vec![ev("event: message\nid: 1\ndata: {}\n\n"), ev("data: 2\n\n")]
        );
        assert_eq!(rest, Some(b"data: 3".to_vec()));
    }

    #[test]
    fn framer_keeps_every_line_ending_style() {
        let (out, rest) = frame(
            &[b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n: ping\n\n"],
            1024,
        );
        assert_eq!(
            out,
            vec![
                ev("data: a\r\n\r\n"),
                ev("data: b\r\r"),
                ev("data: c\n\r\n"),
                ev(": ping\n\n"),
            ]
        );
        assert_eq!(rest, None);
        // Split exactly between the CR and the LF of the closing CRLF.
        let (out, _) = frame(&[b"data: a\r\n\r", b"\ndata: b\n\n"], 1024);
        assert_eq!(out, vec![ev("data: a\r\n\r\n"), ev("data: b\n\n")]);
        // A stream that ends right after a closing CR still emits its event.
        let (out, rest) = frame(&[b"data: a\r\r"], 1024);
        assert_eq!((out, rest), (vec![ev("data: a\r\r")], None));
    }

    #[test]
    fn framer_skips_an_oversized_event_once() {
        let big = format!("data: {}\n\n", "x".repeat(100));
        let (out, _) = frame(&[big.as_bytes(), b"data: ok\n\n"], 32);
        assert_eq!(out, vec![Framed::Oversize, ev("data: ok\n\n")]);
    }

    #[test]
    fn framed_events_parse_as_before() {
        // Every event the framer cuts parses to the same event as the whole
        // stream does.
        let stream =
            b"event: message\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n: c\n\ndata: x\ndata: y\n\n";
        let whole = parse(&[stream], 1024);
        let (out, _) = frame(&[stream], 1024);
        let mut again = Vec::new();
        for f in out {
            let Framed::Event(bytes) = f else { panic!() };
            again.extend(parse(&[&bytes], 1024));
        }
        assert_eq!(whole, again);
    }

    #[test]
    fn written_events_round_trip() {
        let bytes = write_event(Some("message"), Some("9"), b"{\"a\":\n1}");
        assert_eq!(bytes, b"event: message\nid: 9\ndata: {\"a\":\ndata: 1}\n\n");
        let evs = parse(&[&bytes], 1024);
        assert_eq!(evs[0].data, "{\"a\":\n1}");
        assert_eq!(evs[0].id.as_deref(), Some("9"));
    }
}
