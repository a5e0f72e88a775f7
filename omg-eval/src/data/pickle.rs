//! A restricted Python unpickler: it reads the plain data a pickle can hold (`None`,
//! booleans, integers, floats, strings, bytes, lists, tuples, dicts, sets) and refuses
//! everything that would construct an object (`GLOBAL`, `REDUCE`, `BUILD`, ...). That
//! is all the refer toolkit's `refs(unc).p` / `refs(umd).p` files contain: a list of
//! dicts of strings, integers and lists, written by Python 2's `cPickle`.
//!
//! Protocols 0 to 5 are read. Python 2 `str` values (opcodes `STRING`, `BINSTRING`,
//! `SHORT_BINSTRING`) are byte strings; they are decoded as UTF-8, or as Latin-1 when
//! they are not valid UTF-8 (Python 3's `pickle.load` with its default ASCII encoding
//! fails on such bytes instead). The result is a [`serde_json::Value`], so the records
//! can be deserialised with serde; dict keys must be strings or integers (integers
//! become their decimal text).

use serde_json::{Map, Number, Value};

/// Deepest nesting converted to JSON (a guard against reference cycles).
const MAX_DEPTH: usize = 256;

/// A value on the unpickler's stack or in its memo: an index into the arena, so that
/// a container shared through the memo is the same container everywhere.
type Id = usize;

#[derive(Debug, Clone)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Python 2 `str` or Python 3 `bytes`.
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Value(Id),
    Mark,
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u64, Id>,
}

/// Reads a pickle and returns its value as JSON. The error is a description of what
/// is wrong and at which byte; the caller adds the file name.
pub(crate) fn unpickle(data: &[u8]) -> Result<Value, String> {
    let mut u = Unpickler {
        data,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    let root = u.run()?;
    // Shared containers are copied into the JSON tree: bound the copies so that a small
    // pickle of nested shared lists cannot expand exponentially.
    let mut budget = data.len().saturating_mul(16).saturating_add(1 << 20);
    u.to_json(root, 0, &mut budget)
}

impl Unpickler<'_> {
    fn err<T>(&self, at: usize, what: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("not a readable pickle: {what} (byte {at})"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let start = self.pos;
        match start.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                self.pos = end;
                Ok(&self.data[start..end])
            }
            _ => self.err(start, format!("truncated: {n} more bytes expected")),
        }
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16le(&mut self) -> Result<u64, String> {
        let b = self.take(2)?;
        Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32le(&mut self) -> Result<u64, String> {
        let b = self.take(4)?;
        Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    fn u64le(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length read from the file, checked against the bytes that are left.
    fn len(&mut self, n: u64) -> Result<usize, String> {
        let left = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => Ok(n),
            _ => self.err(
                self.pos,
                format!("length {n} exceeds the {left} bytes left"),
            ),
        }
    }

    /// A text line (protocol 0 arguments), without its `\n`.
    fn line(&mut self) -> Result<&[u8], String> {
        let start = self.pos;
        let Some(nl) = self.data[start..].iter().position(|&b| b == b'\n') else {
            return self.err(start, "line without a newline");
        };
        self.pos = start + nl + 1;
        Ok(&self.data[start..start + nl])
    }

    fn line_str(&mut self) -> Result<String, String> {
        let at = self.pos;
        let l = self.line()?.to_vec();
        String::from_utf8(l).or_else(|_| self.err(at, "argument line is not text"))
    }

    fn push(&mut self, n: Node) {
        self.arena.push(n);
        self.stack.push(Slot::Value(self.arena.len() - 1));
    }

    fn pop(&mut self, at: usize) -> Result<Id, String> {
        match self.stack.pop() {
            Some(Slot::Value(id)) => Ok(id),
            Some(Slot::Mark) => self.err(at, "a mark where a value was expected"),
            None => self.err(at, "stack underflow"),
        }
    }

    fn top(&self, at: usize) -> Result<Id, String> {
        match self.stack.last() {
            Some(Slot::Value(id)) => Ok(*id),
            _ => self.err(at, "no value on the stack"),
        }
    }

    /// Pops everything down to the topmost mark (and the mark).
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>, String> {
        let Some(m) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.err(at, "no mark on the stack");
        };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|s| match s {
                Slot::Value(id) => Some(id),
                Slot::Mark => None,
            })
            .collect())
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<(), String> {
        let id = self.top(at)?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), String> {
        match self.memo.get(&key) {
            Some(&id) => {
                self.stack.push(Slot::Value(id));
                Ok(())
            }
            None => self.err(at, format!("memo key {key} was never stored")),
        }
    }

    fn append(&mut self, list: Id, items: Vec<Id>, at: usize) -> Result<(), String> {
        match &mut self.arena[list] {
            Node::List(v) | Node::Set(v) => {
                v.extend(items);
                Ok(())
            }
            _ => self.err(at, "append to something that is not a list"),
        }
    }

    fn set_items(&mut self, dict: Id, items: Vec<Id>, at: usize) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return self.err(at, "odd number of dict keys and values");
        }
        let pairs: Vec<(Id, Id)> = items.chunks(2).map(|c| (c[0], c[1])).collect();
        match &mut self.arena[dict] {
            Node::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => self.err(at, "set item on something that is not a dict"),
        }
    }

    fn int_from_le(&self, bytes: &[u8], at: usize) -> Result<i64, String> {
        if bytes.is_empty() {
            return Ok(0);
        }
        if bytes.len() > 8 {
            let sign = if bytes[bytes.len() - 1] & 0x80 != 0 {
                0xff
            } else {
                0
            };
            if bytes[8..].iter().any(|&b| b != sign) {
                return self.err(at, "integer wider than 64 bits");
            }
        }
        let mut a = [if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xffu8
        } else {
            0
        }; 8];
        let n = bytes.len().min(8);
        a[..n].copy_from_slice(&bytes[..n]);
        let v = i64::from_le_bytes(a);
        if bytes.len() > 8 && (v < 0) != (bytes[bytes.len() - 1] & 0x80 != 0) {
            return self.err(at, "integer wider than 64 bits");
        }
        Ok(v)
    }

    fn run(&mut self) -> Result<Id, String> {
        loop {
            let at = self.pos;
            let op = self.byte()?;
            match op {
                b'.' => {
                    let id = self.pop(at)?;
                    return Ok(id);
                }
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return self.err(at, format!("unknown protocol {proto}"));
                    }
                }
                0x95 => {
                    self.u64le()?; // FRAME: its length is only a read-ahead hint
                }
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    if self.stack.pop().is_none() {
                        return self.err(at, "stack underflow");
                    }
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let id = self.top(at)?;
                    self.stack.push(Slot::Value(id));
                }
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'I' => {
                    let l = self.line_str()?;
                    let node = match l.as_str() {
                        "01" => Node::Bool(true),
                        "00" => Node::Bool(false),
                        s => match s.parse::<i64>() {
                            Ok(v) => Node::Int(v),
                            Err(_) => return self.err(at, format!("bad INT {s:?}")),
                        },
                    };
                    self.push(node);
                }
                b'L' => {
                    let l = self.line_str()?;
                    let s = l.strip_suffix('L').unwrap_or(&l);
                    match s.parse::<i64>() {
                        Ok(v) => self.push(Node::Int(v)),
                        Err(_) => return self.err(at, format!("bad or too wide LONG {l:?}")),
                    }
                }
                b'J' => {
                    let b = self.take(4)?;
                    let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.push(Node::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Node::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16le()?;
                    self.push(Node::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.byte()?)
                    } else {
                        self.u32le()?
                    };
                    let n = self.len(n)?;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.int_from_le(&bytes, at)?;
                    self.push(Node::Int(v));
                }
                b'F' => {
                    let l = self.line_str()?;
                    match l.trim().parse::<f64>() {
                        Ok(v) => self.push(Node::Float(v)),
                        Err(_) => return self.err(at, format!("bad FLOAT {l:?}")),
                    }
                }
                b'G' => {
                    let v = f64::from_bits(u64::from_be_bytes(
                        self.take(8)?.try_into().unwrap_or([0; 8]),
                    ));
                    self.push(Node::Float(v));
                }
                b'S' => {
                    let l = self.line()?.to_vec();
                    let bytes = unquote_py_string(&l).or_else(|e| self.err(at, e))?;
                    self.push(Node::Bytes(bytes));
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'U' | b'C' => u64::from(self.byte()?),
                        b'T' | b'B' => self.u32le()?,
                        _ => self.u64le()?,
                    };
                    let n = self.len(n)?;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Node::Bytes(bytes));
                }
                b'V' => {
                    let l = self.line()?.to_vec();
                    let s = raw_unicode_escape(&l).or_else(|e| self.err(at, e))?;
                    self.push(Node::Str(s));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        0x8c => u64::from(self.byte()?),
                        b'X' => self.u32le()?,
                        _ => self.u64le()?,
                    };
                    let n = self.len(n)?;
                    let bytes = self.take(n)?.to_vec();
                    match String::from_utf8(bytes) {
                        Ok(s) => self.push(Node::Str(s)),
                        Err(_) => return self.err(at, "unicode string is not UTF-8"),
                    }
                }
                b']' => self.push(Node::List(Vec::new())),
                b')' => self.push(Node::Tuple(Vec::new())),
                b'}' => self.push(Node::Dict(Vec::new())),
                0x8f => self.push(Node::Set(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    self.arena.push(Node::Dict(Vec::new()));
                    let id = self.arena.len() - 1;
                    self.set_items(id, items, at)?;
                    self.stack.push(Slot::Value(id));
                }
                b'a' => {
                    let item = self.pop(at)?;
                    let list = self.top(at)?;
                    self.append(list, vec![item], at)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(at)?;
                    let list = self.top(at)?;
                    self.append(list, items, at)?;
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let dict = self.top(at)?;
                    self.set_items(dict, vec![k, v], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let dict = self.top(at)?;
                    self.set_items(dict, items, at)?;
                }
                b'p' => {
                    let l = self.line_str()?;
                    let key = l
                        .parse::<u64>()
                        .or_else(|_| self.err(at, format!("bad PUT {l:?}")))?;
                    self.memo_put(key, at)?;
                }
                b'q' => {
                    let key = u64::from(self.byte()?);
                    self.memo_put(key, at)?;
                }
                b'r' => {
                    let key = self.u32le()?;
                    self.memo_put(key, at)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key, at)?;
                }
                b'g' => {
                    let l = self.line_str()?;
                    let key = l
                        .parse::<u64>()
                        .or_else(|_| self.err(at, format!("bad GET {l:?}")))?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let key = u64::from(self.byte()?);
                    self.memo_get(key, at)?;
                }
                b'j' => {
                    let key = self.u32le()?;
                    self.memo_get(key, at)?;
                }
                b'c' | 0x93 | b'R' | b'b' | b'i' | b'o' | 0x81 | 0x92 | b'P' | b'Q' | 0x82
                | 0x83 | 0x84 | 0x97 | 0x98 => {
                    return self.err(
                        at,
                        format!(
                            "opcode 0x{op:02x} builds a Python object; only plain data is read"
                        ),
                    );
                }
                _ => return self.err(at, format!("unknown opcode 0x{op:02x}")),
            }
        }
    }

    fn to_json(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value, String> {
        if *budget == 0 {
            return Err(
                "not a readable pickle: shared values expand to too many items".to_string(),
            );
        }
        *budget -= 1;
        if depth > MAX_DEPTH {
            return Err(format!(
                "not a readable pickle: nested deeper than {MAX_DEPTH} levels (or cyclic)"
            ));
        }
        Ok(match &self.arena[id] {
            Node::None => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(v) => Value::Number(Number::from(*v)),
            Node::Float(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Bytes(b) => Value::String(py2_str(b)),
            Node::List(v) | Node::Tuple(v) | Node::Set(v) => Value::Array(
                v.iter()
                    .map(|&i| self.to_json(i, depth + 1, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Dict(pairs) => {
                let mut m = Map::new();
                for &(k, v) in pairs {
                    let key = match &self.arena[k] {
                        Node::Str(s) => s.clone(),
                        Node::Bytes(b) => py2_str(b),
                        Node::Int(i) => i.to_string(),
                        other => {
                            return Err(format!(
                                "not a readable pickle: dict key {other:?} is not a string or integer"
                            ));
                        }
                    };
                    m.insert(key, self.to_json(v, depth + 1, budget)?);
                }
                Value::Object(m)
            }
        })
    }
}

/// A Python 2 byte string as text: UTF-8 when valid, else Latin-1.
fn py2_str(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| char::from(c)).collect(),
    }
}

/// The bytes of a protocol 0 `STRING` argument: a Python 2 `repr` of a byte string,
/// quoted with `'` or `"`, with backslash escapes.
fn unquote_py_string(l: &[u8]) -> Result<Vec<u8>, String> {
    match l.first() {
        Some(&c @ (b'\'' | b'"')) if l.len() >= 2 && l[l.len() - 1] == c => {}
        _ => return Err("STRING argument is not quoted".to_string()),
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = body.get(i) else {
            return Err("STRING argument ends with a backslash".to_string());
        };
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let hex = body
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("bad \\x escape in STRING argument")?;
                out.push(hex);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Decodes Python's `raw-unicode-escape` (the protocol 0 `UNICODE` argument): bytes are
/// Latin-1 characters, except `\uXXXX` and `\UXXXXXXXX`.
fn raw_unicode_escape(l: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        let c = l[i];
        if c == b'\\' && matches!(l.get(i + 1), Some(b'u' | b'U')) {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let cp = l
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
                .ok_or("bad \\u escape in UNICODE argument")?;
            out.push(cp);
            i += 2 + n;
        } else {
            out.push(char::from(c));
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_python2_style_protocol2() {
        // [{'a': 'x', u'b': [1, 300, -2]}] as Python 2 cPickle protocol 2 writes it
        // (str keys with SHORT_BINSTRING, unicode with BINUNICODE, memo puts).
        let mut p = vec![0x80, 2, b']', b'q', 0, b'}', b'q', 1, b'('];
        p.extend([b'U', 1, b'a', b'q', 2, b'U', 1, b'x', b'q', 3]);
        p.extend([b'X', 1, 0, 0, 0, b'b', b'q', 4, b']', b'q', 5, b'(']);
        p.extend([b'K', 1, b'M', 0x2c, 1, b'J', 0xfe, 0xff, 0xff, 0xff, b'e']);
        p.extend([b'u', b'a', b'.']);
        let v = unpickle(&p).unwrap();
        assert_eq!(v, serde_json::json!([{"a": "x", "b": [1, 300, -2]}]));
    }

    #[test]
    fn shared_containers_through_the_memo() {
        // l = []; [l, l] with l appended to after its second use is impossible in a
        // pickle stream, but a GET of a finished list must give its items.
        let p = [
            0x80, 2, b']', b'q', 0, b'(', b']', b'q', 1, b'K', 7, b'a', b'h', 1, b'e', b'.',
        ];
        let v = unpickle(&p).unwrap();
        assert_eq!(v, serde_json::json!([[7], [7]]));
    }

    #[test]
    fn refuses_objects_and_garbage() {
        let e = unpickle(b"\x80\x02cos\nsystem\nq\x00.").unwrap_err();
        assert!(e.contains("builds a Python object"), "{e}");
        let e = unpickle(b"{\"json\": 1}").unwrap_err();
        assert!(e.contains("not a readable pickle"), "{e}");
        let e = unpickle(b"\x80\x02]q\x00(K\x01").unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn shared_lists_do_not_expand_exponentially() {
        // a0 = [1]; a(k+1) = [ak, ak] for 60 levels: 2^60 leaves as a tree.
        let mut p = vec![0x80, 2, b']', b'K', 1, b'a', b'q', 0];
        for k in 0..60u8 {
            p.extend([b']', b'(', b'h', k, b'h', k, b'e', b'q', k + 1]);
        }
        p.push(b'.');
        let e = unpickle(&p).unwrap_err();
        assert!(e.contains("too many items"), "{e}");
    }

    #[test]
    fn protocol0_strings() {
        assert_eq!(
            unquote_py_string(b"'it\\'s \\xe9\\n'").unwrap(),
            b"it's \xe9\n".to_vec()
        );
        assert_eq!(raw_unicode_escape(b"caf\\u00e9").unwrap(), "café");
        assert_eq!(py2_str(b"caf\xe9"), "café");
    }

    #[test]
    fn long1_integers() {
        let mut u = Unpickler {
            data: &[],
            pos: 0,
            arena: vec![],
            stack: vec![],
            memo: Default::default(),
        };
        u.pos = 0;
        assert_eq!(u.int_from_le(&[0xff, 0x00], 0).unwrap(), 255);
        assert_eq!(u.int_from_le(&[0xff], 0).unwrap(), -1);
        assert_eq!(
            u.int_from_le(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff], 0)
                .unwrap(),
            i64::MIN
        );
        assert!(u.int_from_le(&[0, 0, 0, 0, 0, 0, 0, 0, 1], 0).is_err());
    }
}
