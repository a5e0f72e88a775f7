//! A minimal reader for sentencepiece `tokenizer.model` files.
//!
//! A `tokenizer.model` is a serialized protobuf `ModelProto` (see
//! `sentencepiece_model.proto`). Only the fields needed to rebuild the InternLM2 BPE
//! tokenizer are decoded; every other field is skipped according to its wire type, so
//! models written by newer sentencepiece versions still load. Field numbers (checked
//! against `sentencepiece_model_pb2` of sentencepiece 0.2):
//!
//! | message          | field                   | number | wire type        |
//! |------------------|-------------------------|--------|------------------|
//! | `ModelProto`     | `pieces` (repeated)     | 1      | length-delimited |
//! |                  | `trainer_spec`          | 2      | length-delimited |
//! |                  | `normalizer_spec`       | 3      | length-delimited |
//! | `SentencePiece`  | `piece`                 | 1      | length-delimited |
//! |                  | `score`                 | 2      | fixed32 (float)  |
//! |                  | `type`                  | 3      | varint (enum)    |
//! | `TrainerSpec`    | `model_type`            | 3      | varint (enum)    |
//! |                  | `byte_fallback`         | 35     | varint (bool)    |
//! |                  | `unk_id` / `bos_id` / `eos_id` / `pad_id` | 40 / 41 / 42 / 43 | varint (int32) |
//! |                  | `unk_piece` / `bos_piece` / `eos_piece` / `pad_piece` | 45 / 46 / 47 / 48 | length-delimited |
//! | `NormalizerSpec` | `name`                  | 1      | length-delimited |
//! |                  | `precompiled_charsmap`  | 2      | length-delimited |
//! |                  | `add_dummy_prefix`      | 3      | varint (bool)    |
//! |                  | `remove_extra_whitespaces` | 4   | varint (bool)    |
//! |                  | `escape_whitespaces`    | 5      | varint (bool)    |
//!
//! Absent fields take the proto2 defaults declared in `sentencepiece_model.proto`
//! (for example `model_type = UNIGRAM`, `add_dummy_prefix = true`, `unk_piece = "<unk>"`).
//! A message field that occurs several times is merged, as protobuf parsers do.

use std::collections::HashMap;

/// Problems found while decoding a `tokenizer.model` byte buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SentencePieceError {
    /// The buffer ended inside a field (truncated file).
    #[error("truncated protobuf: {context} needs more bytes than remain at offset {offset}")]
    Truncated {
        /// What was being read.
        context: &'static str,
        /// Byte offset (within the enclosing message) where reading started.
        offset: usize,
    },
    /// A varint longer than 10 bytes.
    #[error("malformed protobuf varint at offset {offset}")]
    BadVarint {
        /// Byte offset (within the enclosing message) of the varint.
        offset: usize,
    },
    /// A wire type that protobuf does not define (or deprecated groups).
    #[error("unsupported protobuf wire type {wire_type} (field {field}) at offset {offset}")]
    BadWireType {
        /// The wire type found in the tag.
        wire_type: u8,
        /// The field number found in the tag.
        field: u64,
        /// Byte offset (within the enclosing message) of the tag.
        offset: usize,
    },
    /// A known field was encoded with a wire type that does not match the schema.
    #[error("field {message}.{field} has wire type {wire_type}, expected {expected}")]
    WrongWireType {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Wire type found.
        wire_type: u8,
        /// Wire type the schema requires.
        expected: u8,
    },
    /// A `string` field that is not valid UTF-8.
    #[error("field {message}.{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// Field number 0 is invalid in protobuf.
    #[error("invalid protobuf field number 0 at offset {offset}")]
    ZeroField {
        /// Byte offset (within the enclosing message) of the tag.
        offset: usize,
    },
}

/// The kind of a sentencepiece piece (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PieceType {
    /// `NORMAL` (1): an ordinary piece produced by training.
    Normal,
    /// `UNKNOWN` (2): the unknown piece (`<unk>`).
    Unknown,
    /// `CONTROL` (3): control symbols such as `<s>` / `</s>`.
    Control,
    /// `USER_DEFINED` (4): pieces that are always matched whole.
    UserDefined,
    /// `UNUSED` (5).
    Unused,
    /// `BYTE` (6): byte-fallback pieces `<0x00>` … `<0xFF>`.
    Byte,
    /// Any value not defined by the schema (kept for forward compatibility).
    Other(i32),
}

impl PieceType {
    fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            other => Self::Other(other),
        }
    }

    /// Whether the HF tokenizers treat this kind of piece as a special (added) token:
    /// `UNKNOWN`, `CONTROL` and `USER_DEFINED`.
    pub fn is_special(self) -> bool {
        matches!(self, Self::Unknown | Self::Control | Self::UserDefined)
    }
}

/// One entry of `ModelProto.pieces`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePiece {
    /// The piece text (`▁` marks a space).
    pub piece: String,
    /// The piece score (for BPE: minus the merge rank; 0 for special/byte pieces).
    pub score: f32,
    /// The piece kind.
    pub kind: PieceType,
}

impl Default for SentencePiece {
    fn default() -> Self {
        Self {
            piece: String::new(),
            score: 0.0,
            kind: PieceType::Normal,
        }
    }
}

/// `TrainerSpec.ModelType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// `UNIGRAM` (1), the proto default.
    Unigram,
    /// `BPE` (2).
    Bpe,
    /// `WORD` (3).
    Word,
    /// `CHAR` (4).
    Char,
    /// A value not defined by the schema.
    Other(i32),
}

impl ModelType {
    fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Unigram,
            2 => Self::Bpe,
            3 => Self::Word,
            4 => Self::Char,
            other => Self::Other(other),
        }
    }
}

/// The subset of `TrainerSpec` that tokenization depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    /// Model algorithm (default `UNIGRAM`).
    pub model_type: ModelType,
    /// Whether unknown characters are encoded as byte pieces (default false).
    pub byte_fallback: bool,
    /// Id of the unknown piece (default 0).
    pub unk_id: i32,
    /// Id of the BOS piece (default 1, -1 = none).
    pub bos_id: i32,
    /// Id of the EOS piece (default 2, -1 = none).
    pub eos_id: i32,
    /// Id of the padding piece (default -1 = none).
    pub pad_id: i32,
    /// Text of the unknown piece (default `<unk>`).
    pub unk_piece: String,
    /// Text of the BOS piece (default `<s>`).
    pub bos_piece: String,
    /// Text of the EOS piece (default `</s>`).
    pub eos_piece: String,
    /// Text of the padding piece (default `<pad>`).
    pub pad_piece: String,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        Self {
            model_type: ModelType::Unigram,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            unk_piece: "<unk>".to_owned(),
            bos_piece: "<s>".to_owned(),
            eos_piece: "</s>".to_owned(),
            pad_piece: "<pad>".to_owned(),
        }
    }
}

/// The subset of `NormalizerSpec` that tokenization depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizerSpec {
    /// Normalization rule name (`identity`, `nmt_nfkc`, …; default empty).
    pub name: String,
    /// Compiled normalization rules (empty = identity).
    pub precompiled_charsmap: Vec<u8>,
    /// Whether a `▁` is prepended to the input (default true).
    pub add_dummy_prefix: bool,
    /// Whether runs of whitespace are collapsed and trimmed (default true).
    pub remove_extra_whitespaces: bool,
    /// Whether spaces are replaced by `▁` (default true).
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A decoded sentencepiece `ModelProto` (the fields this crate uses).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelProto {
    /// All pieces, in id order (the piece id is its index).
    pub pieces: Vec<SentencePiece>,
    /// `trainer_spec`, `None` when the field is absent.
    pub trainer_spec: Option<TrainerSpec>,
    /// `normalizer_spec`, `None` when the field is absent.
    pub normalizer_spec: Option<NormalizerSpec>,
}

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_FIXED32: u8 = 5;

/// A cursor over one protobuf message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A field value as read from the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Len(&'a [u8]),
    Fixed32([u8; 4]),
}

impl Value<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => WT_VARINT,
            Value::Fixed64 => WT_FIXED64,
            Value::Len(_) => WT_LEN,
            Value::Fixed32(_) => WT_FIXED32,
        }
    }
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, SentencePieceError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(SentencePieceError::Truncated {
                    context: "varint",
                    offset: start,
                });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SentencePieceError::BadVarint { offset: start })
    }

    fn take(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], SentencePieceError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(SentencePieceError::Truncated {
                context,
                offset: start,
            })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    /// Reads the next `(field number, value)` pair, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, SentencePieceError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag_offset = self.pos;
        let tag = self.varint()?;
        let field = tag >> 3;
        let wire_type = (tag & 7) as u8;
        if field == 0 {
            return Err(SentencePieceError::ZeroField { offset: tag_offset });
        }
        let value = match wire_type {
            WT_VARINT => Value::Varint(self.varint()?),
            WT_FIXED64 => {
                self.take(8, "fixed64")?;
                Value::Fixed64
            }
            WT_LEN => {
                let len_offset = self.pos;
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| SentencePieceError::Truncated {
                    context: "length-delimited field",
                    offset: len_offset,
                })?;
                Value::Len(self.take(len, "length-delimited field")?)
            }
            WT_FIXED32 => {
                let b = self.take(4, "fixed32")?;
                Value::Fixed32([b[0], b[1], b[2], b[3]])
            }
            _ => {
                return Err(SentencePieceError::BadWireType {
                    wire_type,
                    field,
                    offset: tag_offset,
                });
            }
        };
        Ok(Some((field, value)))
    }
}

fn expect_varint(
    v: &Value<'_>,
    message: &'static str,
    field: &'static str,
) -> Result<u64, SentencePieceError> {
    match v {
        Value::Varint(x) => Ok(*x),
        other => Err(SentencePieceError::WrongWireType {
            message,
            field,
            wire_type: other.wire_type(),
            expected: WT_VARINT,
        }),
    }
}

fn expect_bytes<'a>(
    v: &Value<'a>,
    message: &'static str,
    field: &'static str,
) -> Result<&'a [u8], SentencePieceError> {
    match v {
        Value::Len(b) => Ok(b),
        other => Err(SentencePieceError::WrongWireType {
            message,
            field,
            wire_type: other.wire_type(),
            expected: WT_LEN,
        }),
    }
}

fn expect_string(
    v: &Value<'_>,
    message: &'static str,
    field: &'static str,
) -> Result<String, SentencePieceError> {
    let bytes = expect_bytes(v, message, field)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| SentencePieceError::InvalidUtf8 { message, field })
}

/// `int32` on the wire: a varint holding the sign-extended 64-bit value; truncated like protobuf.
fn as_int32(x: u64) -> i32 {
    x as i64 as i32
}

fn parse_piece(buf: &[u8], out: &mut SentencePiece) -> Result<(), SentencePieceError> {
    const M: &str = "SentencePiece";
    let mut r = Reader::new(buf);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => out.piece = expect_string(&value, M, "piece")?,
            2 => match value {
                Value::Fixed32(b) => out.score = f32::from_le_bytes(b),
                other => {
                    return Err(SentencePieceError::WrongWireType {
                        message: M,
                        field: "score",
                        wire_type: other.wire_type(),
                        expected: WT_FIXED32,
                    });
                }
            },
            3 => out.kind = PieceType::from_i32(as_int32(expect_varint(&value, M, "type")?)),
            _ => {}
        }
    }
    Ok(())
}

fn parse_trainer(buf: &[u8], out: &mut TrainerSpec) -> Result<(), SentencePieceError> {
    const M: &str = "TrainerSpec";
    let mut r = Reader::new(buf);
    while let Some((field, value)) = r.next_field()? {
        match field {
            3 => {
                out.model_type =
                    ModelType::from_i32(as_int32(expect_varint(&value, M, "model_type")?))
            }
            35 => out.byte_fallback = expect_varint(&value, M, "byte_fallback")? != 0,
            40 => out.unk_id = as_int32(expect_varint(&value, M, "unk_id")?),
            41 => out.bos_id = as_int32(expect_varint(&value, M, "bos_id")?),
            42 => out.eos_id = as_int32(expect_varint(&value, M, "eos_id")?),
            43 => out.pad_id = as_int32(expect_varint(&value, M, "pad_id")?),
            45 => out.unk_piece = expect_string(&value, M, "unk_piece")?,
            46 => out.bos_piece = expect_string(&value, M, "bos_piece")?,
            47 => out.eos_piece = expect_string(&value, M, "eos_piece")?,
            48 => out.pad_piece = expect_string(&value, M, "pad_piece")?,
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer(buf: &[u8], out: &mut NormalizerSpec) -> Result<(), SentencePieceError> {
    const M: &str = "NormalizerSpec";
    let mut r = Reader::new(buf);
    while let Some((field, value)) = r.next_field()? {
        match field {
            1 => out.name = expect_string(&value, M, "name")?,
            2 => {
                out.precompiled_charsmap = expect_bytes(&value, M, "precompiled_charsmap")?.to_vec()
            }
            3 => out.add_dummy_prefix = expect_varint(&value, M, "add_dummy_prefix")? != 0,
            4 => {
                out.remove_extra_whitespaces =
                    expect_varint(&value, M, "remove_extra_whitespaces")? != 0;
            }
            5 => out.escape_whitespaces = expect_varint(&value, M, "escape_whitespaces")? != 0,
            _ => {}
        }
    }
    Ok(())
}

impl ModelProto {
    /// Decodes a serialized `ModelProto` (the content of a `tokenizer.model` file).
    ///
    /// This checks the wire format only; semantic checks (model type, normalizer) are
    /// done by the tokenizer builder.
    ///
    /// # Errors
    ///
    /// A [`SentencePieceError`] for truncated or malformed wire data, a known field with
    /// the wrong wire type, or a `string` field that is not UTF-8.
    pub fn parse(bytes: &[u8]) -> Result<Self, SentencePieceError> {
        const M: &str = "ModelProto";
        let mut model = ModelProto::default();
        let mut r = Reader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match field {
                1 => {
                    let mut piece = SentencePiece::default();
                    parse_piece(expect_bytes(&value, M, "pieces")?, &mut piece)?;
                    model.pieces.push(piece);
                }
                2 => {
                    let spec = model.trainer_spec.get_or_insert_with(TrainerSpec::default);
                    parse_trainer(expect_bytes(&value, M, "trainer_spec")?, spec)?;
                }
                3 => {
                    let spec = model
                        .normalizer_spec
                        .get_or_insert_with(NormalizerSpec::default);
                    parse_normalizer(expect_bytes(&value, M, "normalizer_spec")?, spec)?;
                }
                _ => {}
            }
        }
        Ok(model)
    }
}

/// Extracts BPE merges from a vocabulary the way transformers'
/// `SentencePieceExtractor.extract(vocab_scores)` (transformers 4.36) does, as called by
/// InternLM2's `InternLM2Converter`:
///
/// - `vocab` maps piece → id (for duplicated pieces the last id wins, like a Python dict);
/// - for every `(piece, score)` in `vocab_scores` order (duplicates collapsed into the
///   position of their first occurrence with the last score, like `dict(vocab_scores)`),
///   every split `piece[..i] + piece[i..]` at a character boundary whose two halves are
///   both in `vocab` is a candidate; the candidates of one piece are sorted by
///   `(id(left), id(right))`;
/// - all candidates are then stably sorted by the score of the merged piece, descending
///   (`-0.0 == 0.0`, as in Python).
///
/// Runs in O(total piece length + m log m) for m merges.
pub fn extract_merges(vocab_scores: &[(String, f32)]) -> Vec<(String, String)> {
    let mut vocab: HashMap<&str, u32> = HashMap::with_capacity(vocab_scores.len());
    for (id, (piece, _)) in vocab_scores.iter().enumerate() {
        vocab.insert(piece.as_str(), id as u32);
    }
    // `dict(vocab_scores)`: first-occurrence order, last value.
    let mut order: Vec<(&str, f32)> = Vec::with_capacity(vocab_scores.len());
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(vocab_scores.len());
    for (piece, score) in vocab_scores {
        match position.get(piece.as_str()) {
            Some(&i) => order[i].1 = *score,
            None => {
                position.insert(piece.as_str(), order.len());
                order.push((piece.as_str(), *score));
            }
        }
    }

    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    let mut local: Vec<(&str, &str, u32, u32)> = Vec::new();
    for &(piece, score) in &order {
        local.clear();
        for (index, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(index);
            if let (Some(&l), Some(&r)) = (vocab.get(left), vocab.get(right)) {
                local.push((left, right, l, r));
            }
        }
        local.sort_by_key(|&(_, _, l, r)| (l, r));
        merges.extend(local.iter().map(|&(l, r, _, _)| (l, r, score)));
    }
    // Python's `sorted(..., reverse=True)` is stable; NaN compares as equal here.
    merges.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal));
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_owned(), r.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn parses_minimal_model_and_defaults() {
        let mut piece = Vec::new();
        len_field(1, "▁a".as_bytes(), &mut piece);
        varint(2 << 3 | 5, &mut piece);
        piece.extend_from_slice(&(-3.5f32).to_le_bytes());
        varint(3 << 3, &mut piece);
        varint(4, &mut piece);
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        varint(43 << 3, &mut trainer);
        varint(u64::MAX, &mut trainer); // pad_id = -1, sign-extended
        // an unknown fixed64 field, skipped
        varint(99 << 3 | 1, &mut trainer);
        trainer.extend_from_slice(&[0; 8]);
        let mut model = Vec::new();
        len_field(1, &piece, &mut model);
        len_field(2, &trainer, &mut model);
        let m = ModelProto::parse(&model).unwrap();
        assert_eq!(m.pieces.len(), 1);
        assert_eq!(m.pieces[0].piece, "▁a");
        assert_eq!(m.pieces[0].score, -3.5);
        assert_eq!(m.pieces[0].kind, PieceType::UserDefined);
        let t = m.trainer_spec.unwrap();
        assert_eq!(t.model_type, ModelType::Bpe);
        assert_eq!(t.pad_id, -1);
        assert_eq!(t.unk_piece, "<unk>");
        assert!(m.normalizer_spec.is_none());
        // Truncation anywhere inside is an error, never a panic.
        for cut in 1..model.len() {
            let _ = ModelProto::parse(&model[..cut]);
        }
        assert!(ModelProto::parse(&model[..model.len() - 1]).is_err());
    }

    #[test]
    fn rejects_bad_wire_data() {
        assert!(matches!(
            ModelProto::parse(&[0x0b]),
            Err(SentencePieceError::BadWireType { .. })
        ));
        assert!(matches!(
            ModelProto::parse(&[0x00]),
            Err(SentencePieceError::ZeroField { .. })
        ));
        assert!(matches!(
            ModelProto::parse(&[0xff; 12]),
            Err(SentencePieceError::BadVarint { .. })
        ));
        assert!(matches!(
            ModelProto::parse(&[0x08, 0x01]),
            Err(SentencePieceError::WrongWireType { .. })
        ));
        assert!(matches!(
            ModelProto::parse(&[0x0a, 0x05, 1]),
            Err(SentencePieceError::Truncated { .. })
        ));
    }

    #[test]
    fn merges_follow_score_then_ids() {
        let v = |p: &str, s: f32| (p.to_owned(), s);
        let vocab = vec![
            v("a", 0.0),
            v("b", 0.0),
            v("c", 0.0),
            v("ab", -1.0),
            v("bc", -0.0),
            v("abc", -2.0),
        ];
        let merges = extract_merges(&vocab);
        let merges: Vec<(&str, &str)> = merges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            merges,
            vec![("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]
        );
    }
}
