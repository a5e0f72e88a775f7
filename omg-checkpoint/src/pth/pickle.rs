//! A restricted pickle interpreter for the `data.pkl` record of `torch.save` zip
//! checkpoints.
//!
//! Nothing is ever executed: the few callables PyTorch uses to rebuild tensors
//! (`torch._utils._rebuild_tensor_v2` and friends, `collections.OrderedDict`,
//! `dict`/`list`/`set`) are recognised by name and evaluated here; every other
//! `GLOBAL` becomes an opaque value that `REDUCE`, `NEWOBJ`, `BUILD`, `APPENDS`
//! and `SETITEMS` accept and that is then ignored. Tensor storages arrive as
//! persistent ids `('storage', <storage type>, key, location, numel)` and are
//! only recorded, never read, here.
//!
//! All compound values (tuples, lists, dicts, sets, objects) live in one arena
//! and are referred to by index, so shared references and later mutation behave
//! as in Python, cycles are harmless, and deeply nested input cannot overflow the
//! stack when dropped.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use burn::tensor::{BoolStore, DType};

/// Deepest dict nesting [`collect_tensors`] follows.
const MAX_DEPTH: usize = 128;
/// How many `_rebuild_from_type_v2` wrappers may nest.
const MAX_CALL_DEPTH: usize = 8;

/// A `module.name` reference produced by `GLOBAL` / `STACK_GLOBAL`.
#[derive(Debug)]
pub(super) struct Global {
    module: String,
    name: String,
}

impl Global {
    fn full_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }

    /// Whether this is `torch.UntypedStorage`.
    fn is_untyped_storage(&self) -> bool {
        matches!(self.module.as_str(), "torch" | "torch.storage") && self.name == "UntypedStorage"
    }
}

/// Element type of a storage as named by its persistent id.
#[derive(Debug, Clone)]
enum StorageKind {
    /// A legacy typed storage class (`torch.FloatStorage`, ...); `Err` holds the
    /// name of a class without a burn dtype (e.g. `torch.ComplexFloatStorage`).
    Typed(Result<DType, String>),
    /// `torch.UntypedStorage` (bytes; the tensor's dtype comes from
    /// `_rebuild_tensor_v3`).
    Untyped,
}

/// A storage persistent id: `('storage', type, key, location, numel)`.
#[derive(Debug)]
pub(super) struct StorageRef {
    key: String,
    kind: StorageKind,
}

/// A tensor view on a storage record, as described by `_rebuild_tensor_v2/v3`.
#[derive(Debug)]
pub(super) struct TensorRef {
    /// The storage record key (`<archive>/data/<key>`).
    pub storage_key: String,
    /// Element type; `Err` holds the torch name of a dtype burn cannot represent.
    pub dtype: Result<DType, String>,
    /// Offset of element `[0, 0, ...]` in the storage, in elements.
    pub offset: usize,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Strides in elements (non-negative in torch).
    pub stride: Vec<usize>,
}

/// A pickle value. Compound values are [`Value::Ref`]s into [`Pickle::objects`].
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// An integer that fits in `i64`.
    Int(i64),
    /// A text string.
    Str(Rc<str>),
    /// A global reference (a class or function, never resolved).
    Global(Rc<Global>),
    /// A tensor storage persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor the reader can describe.
    Tensor(Rc<TensorRef>),
    /// A well-formed tensor of a kind this reader does not support (sparse,
    /// quantized, meta, ...); the string says which.
    Unsupported(Rc<str>),
    /// A tensor (or storage) whose description is malformed; the string says how.
    Malformed(Rc<str>),
    /// An index into [`Pickle::objects`].
    Ref(usize),
    /// Any other scalar (None, bool, float, bytes, huge integer, ...).
    Other(&'static str),
}

/// A compound value in the arena.
#[derive(Debug)]
pub(super) enum Obj {
    /// An immutable tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict (`dict` or `collections.OrderedDict`), items in insertion order;
    /// a repeated key's later item wins when read.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// An instance of a class this reader does not know. Items added by
    /// `APPENDS` / `SETITEMS` (list and dict subclasses) are kept.
    Opaque {
        /// `module.name` of the class or function that made it.
        class: Rc<str>,
        /// Items appended by `APPEND(S)`.
        items: Vec<Value>,
        /// Items set by `SETITEM(S)`.
        entries: Vec<(Value, Value)>,
    },
}

/// The result of interpreting a pickle.
#[derive(Debug)]
pub(super) struct Pickle {
    /// The unpickled top-level value.
    pub root: Value,
    /// Arena of compound values.
    pub objects: Vec<Obj>,
}

/// What [`collect_tensors`] found under a name.
#[derive(Debug)]
pub(super) enum Found {
    /// A tensor.
    Tensor(Rc<TensorRef>),
    /// A tensor of an unsupported kind.
    Unsupported(Rc<str>),
    /// A malformed tensor description.
    Malformed(Rc<str>),
}

type PResult<T> = Result<T, String>;

/// Interprets `data` (a whole `data.pkl` record).
pub(super) fn parse(data: &[u8]) -> PResult<Pickle> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
    };
    let root = m.run()?;
    Ok(Pickle {
        root,
        objects: m.objects,
    })
}

/// The name under which a file holding a single bare tensor lists it.
pub const SINGLE_TENSOR_NAME: &str = "tensor";

/// Collects the tensors of an unpickled checkpoint with `.`-joined names.
///
/// A file whose top-level object is one tensor lists it as [`SINGLE_TENSOR_NAME`].
/// If the top-level object is a dict whose `state_dict` value is a dict (an
/// mmengine checkpoint), only that dict is searched; otherwise the top-level
/// dict. Nested dicts are flattened; lists and non-tensor values are ignored.
pub(super) fn collect_tensors(p: &Pickle) -> PResult<Vec<(String, Found)>> {
    // A file holding one bare tensor (e.g. the class-embedding file).
    if let Value::Tensor(t) = &p.root {
        return Ok(vec![(
            SINGLE_TENSOR_NAME.to_owned(),
            Found::Tensor(t.clone()),
        )]);
    }
    let Some(root_entries) = p.dict_like(&p.root) else {
        return Err(format!(
            "the top-level object is {}, not a dict of tensors",
            p.describe(&p.root)
        ));
    };
    let mut start = &p.root;
    for (k, v) in root_entries {
        if matches!(k, Value::Str(s) if &**s == "state_dict") && p.dict_like(v).is_some() {
            start = v;
        }
    }
    let mut out = Vec::new();
    let mut path = HashSet::new();
    p.walk(start, "", 0, &mut path, &mut out)?;
    Ok(out)
}

impl Pickle {
    fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Ref(i) => self.objects.get(*i),
            _ => None,
        }
    }

    /// Items of a dict, or of an unknown object that received `SETITEMS` (a
    /// dict subclass); `None` for anything else, including an unknown object
    /// without items (e.g. a whole pickled `nn.Module`).
    fn dict_like(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.obj(v)? {
            Obj::Dict(e) => Some(e),
            Obj::Opaque { entries, .. } if !entries.is_empty() => Some(entries),
            _ => None,
        }
    }

    fn describe(&self, v: &Value) -> String {
        if let Some(Obj::Opaque { class, .. }) = self.obj(v) {
            return format!("an instance of `{class}`");
        }
        let what = match v {
            Value::Int(_) => "an integer",
            Value::Str(_) => "a string",
            Value::Global(_) => "a global reference",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) | Value::Unsupported(_) | Value::Malformed(_) => "a tensor",
            Value::Other(what) => what,
            Value::Ref(_) => match self.obj(v) {
                Some(Obj::Tuple(_)) => "a tuple",
                Some(Obj::List(_)) => "a list",
                Some(Obj::Dict(_)) => "a dict",
                Some(Obj::Set(_)) => "a set",
                Some(Obj::Opaque { .. }) | None => "an unknown object",
            },
        };
        what.to_string()
    }

    fn walk(
        &self,
        v: &Value,
        prefix: &str,
        depth: usize,
        path: &mut HashSet<usize>,
        out: &mut Vec<(String, Found)>,
    ) -> PResult<()> {
        let Value::Ref(id) = v else { return Ok(()) };
        let Some(entries) = self.dict_like(v) else {
            return Ok(());
        };
        if depth > MAX_DEPTH {
            return Err(format!(
                "dicts nested deeper than {MAX_DEPTH} levels at `{prefix}`"
            ));
        }
        if !path.insert(*id) {
            return Ok(()); // a dict containing itself
        }
        for (k, val) in entries {
            let key = match k {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match val {
                Value::Tensor(t) => out.push((name, Found::Tensor(t.clone()))),
                Value::Unsupported(s) => out.push((name, Found::Unsupported(s.clone()))),
                Value::Malformed(s) => out.push((name, Found::Malformed(s.clone()))),
                Value::Ref(_) => self.walk(val, &name, depth + 1, path, out)?,
                _ => {}
            }
        }
        path.remove(id);
        Ok(())
    }
}

// Opcodes (CPython `Lib/pickle.py`).
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const FLOAT: u8 = b'F';
const INT: u8 = b'I';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG: u8 = b'L';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const PERSID: u8 = b'P';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const STRING: u8 = b'S';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const UNICODE: u8 = b'V';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const INST: u8 = b'i';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const OBJ: u8 = b'o';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const BINFLOAT: u8 = b'G';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const EXT1: u8 = 0x82;
const EXT2: u8 = 0x83;
const EXT4: u8 = 0x84;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;
const FROZENSET: u8 = 0x91;
const NEWOBJ_EX: u8 = 0x92;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const READONLY_BUFFER: u8 = 0x98;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack heights at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    objects: Vec<Obj>,
}

impl<'a> Machine<'a> {
    fn run(&mut self) -> PResult<Value> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| {
                "the pickle ends without a STOP opcode (truncated data.pkl?)".to_string()
            })?;
            let done = self
                .step(op)
                .map_err(|e| format!("data.pkl opcode 0x{op:02x} at byte {at}: {e}"))?;
            if let Some(v) = done {
                return Ok(v);
            }
        }
    }

    /// Executes one opcode; returns the result on `STOP`.
    fn step(&mut self, op: u8) -> PResult<Option<Value>> {
        match op {
            PROTO => {
                let v = self.u8()?;
                if v > 5 {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            FRAME => {
                self.take(8)?;
            }
            STOP => return self.pop().map(Some),
            MARK => self.marks.push(self.stack.len()),
            POP => {
                if self.stack.len() > self.marks.last().copied().unwrap_or(0) {
                    self.pop()?;
                } else if self.marks.pop().is_none() {
                    return Err("POP on an empty stack".into());
                }
            }
            POP_MARK => {
                self.pop_mark()?;
            }
            DUP => {
                let v = self.top()?.clone();
                self.stack.push(v);
            }

            // Scalars.
            NONE => self.stack.push(Value::Other("None")),
            NEWTRUE | NEWFALSE => self.stack.push(Value::Other("a bool")),
            BININT => {
                let b = self.array::<4>()?;
                self.stack
                    .push(Value::Int(i64::from(i32::from_le_bytes(b))));
            }
            BININT1 => {
                let v = self.u8()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            BININT2 => {
                let b = self.array::<2>()?;
                self.stack
                    .push(Value::Int(i64::from(u16::from_le_bytes(b))));
            }
            LONG1 => {
                let n = usize::from(self.u8()?);
                let bytes = self.take(n)?;
                self.stack.push(long_le(bytes));
            }
            LONG4 => {
                let n = self.len_u32()?;
                let bytes = self.take(n)?;
                self.stack.push(long_le(bytes));
            }
            INT => {
                let line = self.line()?;
                let v = match line.trim_ascii() {
                    b"00" | b"01" => Value::Other("a bool"),
                    t => parse_int_text(t),
                };
                self.stack.push(v);
            }
            LONG => {
                let line = self.line()?;
                let t = line.trim_ascii();
                let t = t.strip_suffix(b"L").unwrap_or(t);
                self.stack.push(parse_int_text(t));
            }
            BINFLOAT => {
                self.take(8)?;
                self.stack.push(Value::Other("a float"));
            }
            FLOAT => {
                self.line()?;
                self.stack.push(Value::Other("a float"));
            }

            // Strings and bytes.
            BINUNICODE => {
                let n = self.len_u32()?;
                self.push_utf8(n)?;
            }
            SHORT_BINUNICODE => {
                let n = usize::from(self.u8()?);
                self.push_utf8(n)?;
            }
            BINUNICODE8 => {
                let n = self.len_u64()?;
                self.push_utf8(n)?;
            }
            UNICODE => {
                let line = self.line()?;
                let s = raw_unicode_escape(line);
                self.stack.push(Value::Str(s.into()));
            }
            BINSTRING => {
                let n = self.len_u32()?;
                let b = self.take(n)?;
                self.stack.push(Value::Str(latin1(b).into()));
            }
            SHORT_BINSTRING => {
                let n = usize::from(self.u8()?);
                let b = self.take(n)?;
                self.stack.push(Value::Str(latin1(b).into()));
            }
            STRING => {
                let line = self.line()?;
                let t = line.trim_ascii();
                let unquoted = match t {
                    [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
                    _ => return Err("STRING argument is not quoted".into()),
                };
                self.stack.push(Value::Str(latin1(unquoted).into()));
            }
            BINBYTES => {
                let n = self.len_u32()?;
                self.take(n)?;
                self.stack.push(Value::Other("bytes"));
            }
            SHORT_BINBYTES => {
                let n = usize::from(self.u8()?);
                self.take(n)?;
                self.stack.push(Value::Other("bytes"));
            }
            BINBYTES8 | BYTEARRAY8 => {
                let n = self.len_u64()?;
                self.take(n)?;
                self.stack.push(Value::Other("bytes"));
            }
            NEXT_BUFFER => {
                return Err("out-of-band pickle buffers are not supported".into());
            }
            READONLY_BUFFER => {
                self.top()?;
            }

            // Containers.
            EMPTY_TUPLE => self.push_obj(Obj::Tuple(Vec::new())),
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1 + 1);
                let items = self.pop_n(n)?;
                self.push_obj(Obj::Tuple(items));
            }
            TUPLE => {
                let items = self.pop_mark()?;
                self.push_obj(Obj::Tuple(items));
            }
            EMPTY_LIST => self.push_obj(Obj::List(Vec::new())),
            LIST => {
                let items = self.pop_mark()?;
                self.push_obj(Obj::List(items));
            }
            EMPTY_DICT => self.push_obj(Obj::Dict(Vec::new())),
            DICT => {
                let items = self.pop_mark()?;
                let entries = pairs(items)?;
                self.push_obj(Obj::Dict(entries));
            }
            EMPTY_SET => self.push_obj(Obj::Set(Vec::new())),
            FROZENSET => {
                let items = self.pop_mark()?;
                self.push_obj(Obj::Set(items));
            }
            APPEND => {
                let v = self.pop()?;
                let target = self.top()?.clone();
                self.extend_items(&target, vec![v])?;
            }
            APPENDS | ADDITEMS => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.extend_items(&target, items)?;
            }
            SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                self.extend_entries(&target, vec![(k, v)])?;
            }
            SETITEMS => {
                let items = self.pop_mark()?;
                let entries = pairs(items)?;
                let target = self.top()?.clone();
                self.extend_entries(&target, entries)?;
            }

            // Memo.
            PUT => {
                let line = self.line()?;
                let idx = parse_index(line)?;
                self.put(idx)?;
            }
            BINPUT => {
                let idx = u64::from(self.u8()?);
                self.put(idx)?;
            }
            LONG_BINPUT => {
                let idx = u64::from(u32::from_le_bytes(self.array::<4>()?));
                self.put(idx)?;
            }
            MEMOIZE => {
                let idx = self.memo.len() as u64;
                self.put(idx)?;
            }
            GET => {
                let line = self.line()?;
                let idx = parse_index(line)?;
                self.get(idx)?;
            }
            BINGET => {
                let idx = u64::from(self.u8()?);
                self.get(idx)?;
            }
            LONG_BINGET => {
                let idx = u64::from(u32::from_le_bytes(self.array::<4>()?));
                self.get(idx)?;
            }

            // Globals, calls and objects.
            GLOBAL => {
                let module = latin1(self.line()?);
                let name = latin1(self.line()?);
                self.stack.push(global(module, name));
            }
            STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => {
                        self.stack.push(global(m.to_string(), n.to_string()))
                    }
                    _ => return Err("STACK_GLOBAL operands are not strings".into()),
                }
            }
            REDUCE => {
                let args = self.pop()?;
                let func = self.pop()?;
                let v = self.call(&func, &args, 0);
                self.stack.push(v);
            }
            NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.instantiate(&cls, &args);
                self.stack.push(v);
            }
            NEWOBJ_EX => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.instantiate(&cls, &args);
                self.stack.push(v);
            }
            INST => {
                let module = latin1(self.line()?);
                let name = latin1(self.line()?);
                self.pop_mark()?;
                self.push_obj(opaque(format!("{module}.{name}")));
            }
            OBJ => {
                let items = self.pop_mark()?;
                let class = match items.first() {
                    Some(Value::Global(g)) => g.full_name(),
                    _ => "<unknown>".to_string(),
                };
                self.push_obj(opaque(class));
            }
            BUILD => {
                // Instance state (`__setstate__` / `__dict__`) is never needed.
                self.pop()?;
                self.top()?;
            }
            EXT1 => {
                self.take(1)?;
                self.stack
                    .push(Value::Other("an extension-registry object"));
            }
            EXT2 => {
                self.take(2)?;
                self.stack
                    .push(Value::Other("an extension-registry object"));
            }
            EXT4 => {
                self.take(4)?;
                self.stack
                    .push(Value::Other("an extension-registry object"));
            }
            BINPERSID => {
                let pid = self.pop()?;
                let v = self.persistent_load(&pid);
                self.stack.push(v);
            }
            PERSID => {
                self.line()?;
                self.stack.push(Value::Other("a persistent object"));
            }
            _ => return Err("unknown opcode".into()),
        }
        Ok(None)
    }

    // --- byte reading ---------------------------------------------------

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "needs {n} more bytes but only {} remain (truncated data.pkl?)",
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> PResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn len_u32(&mut self) -> PResult<usize> {
        usize::try_from(u32::from_le_bytes(self.array::<4>()?))
            .map_err(|_| "length does not fit in memory".to_string())
    }

    fn len_u64(&mut self) -> PResult<usize> {
        usize::try_from(u64::from_le_bytes(self.array::<8>()?))
            .map_err(|_| "length does not fit in memory".to_string())
    }

    /// Reads up to (and drops) the next `\n`.
    fn line(&mut self) -> PResult<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("missing end of line (truncated data.pkl?)")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn push_utf8(&mut self, n: usize) -> PResult<()> {
        let b = self.take(n)?;
        // Python may emit lone surrogates ("surrogatepass"); they can only occur
        // in strings this reader does not need, so decode lossily.
        let s = String::from_utf8_lossy(b).into_owned();
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    // --- stack ----------------------------------------------------------

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> PResult<Value> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> PResult<&Value> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        self.stack.last().ok_or_else(|| "stack underflow".into())
    }

    fn pop_n(&mut self, n: usize) -> PResult<Vec<Value>> {
        if self.stack.len() < self.floor() + n {
            return Err("stack underflow".into());
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> PResult<Vec<Value>> {
        let at = self.marks.pop().ok_or("no MARK on the stack")?;
        Ok(self.stack.split_off(at))
    }

    fn push_obj(&mut self, o: Obj) {
        self.objects.push(o);
        self.stack.push(Value::Ref(self.objects.len() - 1));
    }

    fn put(&mut self, idx: u64) -> PResult<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn get(&mut self, idx: u64) -> PResult<()> {
        let v = self
            .memo
            .get(&idx)
            .ok_or_else(|| format!("memo entry {idx} was never stored"))?
            .clone();
        self.stack.push(v);
        Ok(())
    }

    fn extend_items(&mut self, target: &Value, new: Vec<Value>) -> PResult<()> {
        let Value::Ref(i) = target else {
            return Err("APPEND(S)/ADDITEMS target is not a container".into());
        };
        match self.objects.get_mut(*i) {
            Some(Obj::List(v) | Obj::Set(v) | Obj::Opaque { items: v, .. }) => {
                v.extend(new);
                Ok(())
            }
            _ => Err("APPEND(S)/ADDITEMS target is not a list, set or object".into()),
        }
    }

    fn extend_entries(&mut self, target: &Value, new: Vec<(Value, Value)>) -> PResult<()> {
        let Value::Ref(i) = target else {
            return Err("SETITEM(S) target is not a container".into());
        };
        match self.objects.get_mut(*i) {
            Some(Obj::Dict(e) | Obj::Opaque { entries: e, .. }) => {
                e.extend(new);
                Ok(())
            }
            _ => Err("SETITEM(S) target is not a dict or object".into()),
        }
    }

    fn seq(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Ref(i) => match self.objects.get(*i)? {
                Obj::Tuple(items) | Obj::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    // --- evaluation -----------------------------------------------------

    /// `REDUCE`: calls `func(*args)` for the few callables torch needs.
    fn call(&mut self, func: &Value, args: &Value, depth: usize) -> Value {
        let Value::Global(g) = func else {
            return self.new_opaque();
        };
        match (g.module.as_str(), g.name.as_str()) {
            (
                "torch._utils",
                name @ ("_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3"),
            ) => match self.rebuild_tensor(name, args) {
                Ok(t) => Value::Tensor(Rc::new(t)),
                Err(e) => Value::Malformed(format!("torch._utils.{name}: {e}").into()),
            },
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match self.seq(args).and_then(|a| a.first()) {
                    Some(v @ (Value::Tensor(_) | Value::Unsupported(_) | Value::Malformed(_))) => {
                        v.clone()
                    }
                    _ => Value::Malformed(
                        format!(
                            "torch._utils.{}: the first argument is not a tensor",
                            g.name
                        )
                        .into(),
                    ),
                }
            }
            ("torch._utils", name) if name.starts_with("_rebuild_") => {
                Value::Unsupported(format!("tensors rebuilt by torch._utils.{name}").into())
            }
            ("torch._tensor", "_rebuild_from_type_v2") => {
                // (func, new_type, args, state): a tensor subclass around `func(*args)`.
                let inner = self
                    .seq(args)
                    .filter(|a| a.len() >= 3)
                    .map(|a| (a[0].clone(), a[2].clone()));
                match inner {
                    Some((f, a)) if depth < MAX_CALL_DEPTH => self.call(&f, &a, depth + 1),
                    _ => Value::Malformed(
                        "torch._tensor._rebuild_from_type_v2: malformed arguments".into(),
                    ),
                }
            }
            _ => self.instantiate(func, args),
        }
    }

    /// `NEWOBJ` (and `REDUCE` on a class): builtin containers become real
    /// containers (initialised from a sequence argument), anything else opaque.
    fn instantiate(&mut self, cls: &Value, args: &Value) -> Value {
        let Value::Global(g) = cls else {
            return self.new_opaque();
        };
        let first: Vec<Value> = self
            .seq(args)
            .and_then(|a| a.first())
            .and_then(|a0| self.seq(a0).or_else(|| self.set_items(a0)))
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let obj = match (g.module.as_str(), g.name.as_str()) {
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
                let entries = first
                    .iter()
                    .filter_map(|p| match self.seq(p) {
                        Some([k, v]) => Some((k.clone(), v.clone())),
                        _ => None,
                    })
                    .collect();
                Obj::Dict(entries)
            }
            ("builtins" | "__builtin__", "list") => Obj::List(first),
            ("builtins" | "__builtin__", "set" | "frozenset") => Obj::Set(first),
            _ => opaque(g.full_name()),
        };
        self.objects.push(obj);
        Value::Ref(self.objects.len() - 1)
    }

    fn set_items(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Ref(i) => match self.objects.get(*i)? {
                Obj::Set(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    fn new_opaque(&mut self) -> Value {
        self.objects
            .push(opaque("<result of calling an unknown object>"));
        Value::Ref(self.objects.len() - 1)
    }

    /// `BINPERSID`: torch's `('storage', storage_type, key, location, numel)`.
    fn persistent_load(&self, pid: &Value) -> Value {
        let Some(items) = self.seq(pid) else {
            return Value::Other("a persistent object");
        };
        if !matches!(items.first(), Some(Value::Str(s)) if &**s == "storage") {
            return Value::Other("a persistent object");
        }
        let [_, ty, key, _location, _numel, ..] = items else {
            return Value::Malformed(
                format!(
                    "storage persistent id has {} fields, expected 5",
                    items.len()
                )
                .into(),
            );
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Value::Malformed("storage key is not a string".into()),
        };
        let Value::Global(ty) = ty else {
            return Value::Malformed(format!("storage `{key}` has no storage class").into());
        };
        let kind = if ty.is_untyped_storage() {
            StorageKind::Untyped
        } else {
            StorageKind::Typed(storage_dtype(ty))
        };
        Value::Storage(Rc::new(StorageRef { key, kind }))
    }

    /// `_rebuild_tensor(storage, offset, size, stride)`,
    /// `_rebuild_tensor_v2(..., requires_grad, backward_hooks[, metadata])`,
    /// `_rebuild_tensor_v3(..., requires_grad, backward_hooks, dtype[, metadata])`.
    fn rebuild_tensor(&self, name: &str, args: &Value) -> Result<TensorRef, String> {
        let a = self.seq(args).ok_or("the arguments are not a tuple")?;
        let min = if name == "_rebuild_tensor_v3" { 7 } else { 4 };
        if a.len() < min {
            return Err(format!("{} arguments, expected at least {min}", a.len()));
        }
        let storage = match &a[0] {
            Value::Storage(s) => s,
            Value::Malformed(m) => return Err(m.to_string()),
            _ => return Err("the first argument is not a storage".into()),
        };
        let offset = self
            .usize_arg(&a[1])
            .ok_or("storage_offset is not a non-negative integer")?;
        let shape = self
            .usize_seq(&a[2])
            .ok_or("size is not a tuple of non-negative integers")?;
        let stride = self
            .usize_seq(&a[3])
            .ok_or("stride is not a tuple of non-negative integers")?;
        if shape.len() != stride.len() {
            return Err(format!(
                "size has {} dimensions but stride has {}",
                shape.len(),
                stride.len()
            ));
        }
        let dtype = if name == "_rebuild_tensor_v3" {
            match &a[6] {
                Value::Global(g) if g.module == "torch" => torch_dtype(&g.name),
                _ => return Err("the dtype argument is not a torch dtype".into()),
            }
        } else {
            match &storage.kind {
                StorageKind::Typed(d) => d.clone(),
                StorageKind::Untyped => Ok(DType::U8),
            }
        };
        Ok(TensorRef {
            storage_key: storage.key.clone(),
            dtype,
            offset,
            shape,
            stride,
        })
    }

    fn usize_arg(&self, v: &Value) -> Option<usize> {
        match v {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }

    fn usize_seq(&self, v: &Value) -> Option<Vec<usize>> {
        self.seq(v)?.iter().map(|x| self.usize_arg(x)).collect()
    }
}

fn opaque(class: impl Into<Rc<str>>) -> Obj {
    Obj::Opaque {
        class: class.into(),
        items: Vec::new(),
        entries: Vec::new(),
    }
}

fn global(module: String, name: String) -> Value {
    Value::Global(Rc::new(Global { module, name }))
}

/// Pairs up `k1, v1, k2, v2, ...`.
fn pairs(items: Vec<Value>) -> PResult<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// A little-endian two's-complement integer (`LONG1` / `LONG4`).
fn long_le(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::Other("an integer too large for 64 bits");
    }
    let Some(&last) = bytes.last() else {
        return Value::Int(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0 };
    let mut b = [fill; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(b))
}

fn parse_int_text(t: &[u8]) -> Value {
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(Value::Other("an integer too large for 64 bits"), Value::Int)
}

fn parse_index(line: &[u8]) -> PResult<u64> {
    std::str::from_utf8(line.trim_ascii())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "memo index is not a number".into())
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// Decodes Python's `raw-unicode-escape` (`\uXXXX`, `\UXXXXXXXX`, else latin-1).
fn raw_unicode_escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            let n = if b[i + 1] == b'u' { 4 } else { 8 };
            let digits = b.get(i + 2..i + 2 + n);
            let c = digits
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .and_then(char::from_u32);
            if let Some(c) = c {
                out.push(c);
                i += 2 + n;
                continue;
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

/// The dtype of a legacy storage class (`torch.FloatStorage`, ...).
fn storage_dtype(g: &Global) -> Result<DType, String> {
    if !matches!(g.module.as_str(), "torch" | "torch.cuda" | "torch.storage") {
        return Err(g.full_name());
    }
    Ok(match g.name.as_str() {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool(BoolStore::Native),
        _ => return Err(g.full_name()),
    })
}

/// The dtype of a `torch.<dtype>` global (as passed to `_rebuild_tensor_v3`).
fn torch_dtype(name: &str) -> Result<DType, String> {
    Ok(match name {
        "float64" | "double" => DType::F64,
        "float32" | "float" => DType::F32,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool(BoolStore::Native),
        _ => return Err(format!("torch.{name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> PResult<Pickle> {
        parse(bytes)
    }

    #[test]
    fn long1_sign_extension() {
        assert!(matches!(long_le(&[0xff]), Value::Int(-1)));
        assert!(matches!(long_le(&[0x00, 0x01]), Value::Int(256)));
        assert!(matches!(long_le(&[]), Value::Int(0)));
        assert!(matches!(long_le(&[0; 9]), Value::Other(_)));
    }

    #[test]
    fn memo_shares_mutated_dicts() {
        // {} PUT 0, MARK 'a' 1 SETITEMS, then (GET 0, GET 0) tuple: both refs see 'a'.
        let p = run(b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01uh\x00h\x00\x86.").unwrap();
        let Value::Ref(t) = p.root else { panic!() };
        let Obj::Tuple(items) = &p.objects[t] else {
            panic!()
        };
        assert!(matches!(items[0], Value::Ref(i) if i == 0));
        assert!(matches!(&p.objects[0], Obj::Dict(e) if e.len() == 1));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            &b""[..],
            b"\x80\x02",
            b"\x80\x02}",
            b"\x80\x09N.",
            b"\x80\x02h\x05.",
            b"\x80\x02u.",
            b"\x80\x02X\xff\xff\xff\x7f",
            b"\x80\x02\xff.",
            b"\x80\x02K\x01s.",
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn foreign_objects_are_opaque() {
        // foo.Bar() then BUILD with {} and with {'x': 2}: the object stays opaque.
        let p = run(b"\x80\x02cfoo\nBar\n)R}b}q\x01X\x01\x00\x00\x00xK\x02sb.").unwrap();
        // objects: [() args, the instance, {}, {'x': 2}]
        assert!(matches!(p.root, Value::Ref(1)));
        assert!(matches!(&p.objects[1], Obj::Opaque { .. }));
        // An unknown object without dict items is not a checkpoint dict...
        let e = collect_tensors(&p).unwrap_err();
        assert!(e.contains("`foo.Bar`"), "{e}");
        // ...but a dict subclass that received SETITEMS is walked.
        let p = run(b"\x80\x02cfoo\nD\n)\x81X\x01\x00\x00\x00xK\x02s.").unwrap();
        assert!(collect_tensors(&p).unwrap().is_empty());
    }

    #[test]
    fn self_referencing_dict_terminates() {
        // {} PUT 0; 'a' GET 0 SETITEM
        let p = run(b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.").unwrap();
        assert!(collect_tensors(&p).unwrap().is_empty());
    }
}
