//! Opening a GGUF file that may be hostile.
//!
//! In a distillation audit the suspect supplies the weights, and it wants the audit to fail. candle's
//! GGUF parser bounds strings and arrays by the file's size, but it divides by the file's
//! `general.alignment` (0 panics) and multiplies tensor dimensions without overflow checks. So
//! every file is first walked here, without allocating anything its header claims: each length
//! is checked against the bytes that remain, each tensor's size is computed with checked
//! arithmetic and must lie inside the file. Only a file that passes is handed to candle.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;

use crate::{Error, Result};

/// Deepest nesting of arrays in metadata values (real files nest at most once).
const MAX_DEPTH: usize = 4;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Longest metadata key, in bytes.
const MAX_KEY: u64 = 1 << 16;
/// The default alignment of the tensor data section.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest accepted `general.alignment`.
const MAX_ALIGNMENT: u64 = 1 << 20;

/// Opens `path`, checks it (see the module docs) and parses its header with candle. The file
/// is returned positioned anywhere: readers of tensors seek.
pub(crate) fn open(path: &Path) -> Result<(File, Content)> {
    let missing = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::ModelMissing {
            path: path.to_path_buf(),
        },
        _ => Error::io(path, e),
    };
    // Checked before opening: opening a FIFO to read waits for a writer, forever.
    let meta = std::fs::metadata(path).map_err(missing)?;
    if !meta.is_file() {
        return Err(Error::gguf(path, "not a regular file"));
    }
    let file = File::open(path).map_err(missing)?;
    let mut reader = BufReader::new(file);
    check(&mut reader, meta.len()).map_err(|reason| Error::gguf(path, reason))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut reader).map_err(|e| Error::gguf_candle(path, &e))?;
    Ok((reader.into_inner(), content))
}

/// Walks a GGUF header of a `len`-byte file: metadata, tensor table and the data section's
/// extent. Returns what is wrong, in words.
pub fn check<R: Read + Seek>(reader: &mut R, len: u64) -> std::result::Result<(), String> {
    let mut w = Walker {
        r: reader,
        pos: 0,
        len,
        wide: false,
    };
    let magic = w.u32()?;
    if magic != 0x4655_4747 {
        return Err(format!("not a GGUF file (magic 0x{magic:08x})"));
    }
    let version = w.u32()?;
    w.wide = match version {
        1 => false,
        2 | 3 => true,
        v => return Err(format!("unsupported GGUF version {v}")),
    };
    let tensors = w.length()?;
    let entries = w.length()?;
    // Each metadata entry takes at least 5 bytes past its key's length, each tensor 16.
    w.fits(entries.saturating_mul(5), "metadata entries")?;
    w.fits(tensors.saturating_mul(16), "tensor table")?;
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..entries {
        let key = w.key()?;
        let kind = w.u32()?;
        match w.value(kind, 0)? {
            Some(v) if key == "general.alignment" => alignment = v,
            _ => {}
        }
    }
    if alignment == 0 || alignment > MAX_ALIGNMENT || !alignment.is_power_of_two() {
        return Err(format!(
            "general.alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}"
        ));
    }
    let mut extents = Vec::new();
    for _ in 0..tensors {
        let name_len = w.length()?;
        w.skip(name_len, "tensor name")?;
        let dims = w.u32()?;
        if dims > MAX_DIMS {
            return Err(format!(
                "a tensor has {dims} dimensions, at most {MAX_DIMS}"
            ));
        }
        let mut elements: u64 = 1;
        for _ in 0..dims {
            let d = if w.wide {
                w.u64()?
            } else {
                u64::from(w.u32()?)
            };
            elements = elements
                .checked_mul(d)
                .ok_or("a tensor's dimensions overflow 64 bits")?;
        }
        let dtype = dtype(w.u32()?)?;
        let block = dtype.block_size() as u64;
        if !elements.is_multiple_of(block) {
            return Err(format!(
                "a tensor of {elements} elements is not a whole number of {dtype:?} blocks"
            ));
        }
        let bytes = (elements / block)
            .checked_mul(dtype.type_size() as u64)
            .ok_or("a tensor's size overflows 64 bits")?;
        let offset = w.u64()?;
        extents.push((offset, bytes));
    }
    let data = w.pos.div_ceil(alignment).saturating_mul(alignment);
    for (offset, bytes) in extents {
        let end = data.checked_add(offset).and_then(|s| s.checked_add(bytes));
        if end.is_none_or(|end| end > len) {
            return Err(format!(
                "a tensor of {bytes} bytes at data offset {offset} lies past the end of the \
                 {len}-byte file"
            ));
        }
    }
    Ok(())
}

/// The tensor types GGUF numbers and candle runs (the numbering is the file format's).
fn dtype(id: u32) -> std::result::Result<GgmlDType, String> {
    Ok(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        other => return Err(format!("unsupported tensor type {other}")),
    })
}

/// A bounded cursor over the header.
struct Walker<'a, R> {
    r: &'a mut R,
    pos: u64,
    len: u64,
    /// Version 2 and later: 64-bit lengths and dimensions.
    wide: bool,
}

impl<R: Read + Seek> Walker<'_, R> {
    fn fits(&self, n: u64, what: &str) -> std::result::Result<(), String> {
        match self.len.saturating_sub(self.pos) {
            left if n <= left => Ok(()),
            left => Err(format!(
                "the {what} needs {n} bytes at offset {}, but only {left} remain",
                self.pos
            )),
        }
    }

    fn bytes<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        self.fits(N as u64, "header")?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn length(&mut self) -> std::result::Result<u64, String> {
        if self.wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> std::result::Result<(), String> {
        self.fits(n, what)?;
        let step = i64::try_from(n).map_err(|_| format!("the {what} is too long"))?;
        self.r
            .seek(SeekFrom::Current(step))
            .map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }

    fn key(&mut self) -> std::result::Result<String, String> {
        let n = self.length()?;
        if n > MAX_KEY {
            return Err(format!("a metadata key of {n} bytes (at most {MAX_KEY})"));
        }
        self.fits(n, "metadata key")?;
        let mut key = vec![0u8; n as usize];
        self.r.read_exact(&mut key).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&key).into_owned())
    }

    /// Skips one value of type `kind`; returns it when it is an unsigned or non-negative integer.
    fn value(&mut self, kind: u32, depth: usize) -> std::result::Result<Option<u64>, String> {
        Ok(match kind {
            0 => Some(u64::from(self.bytes::<1>()?[0])),
            1 | 7 => {
                self.skip(1, "value")?;
                None
            }
            2 => Some(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => {
                self.skip(2, "value")?;
                None
            }
            4 => Some(u64::from(self.u32()?)),
            5 => u64::try_from(i32::from_le_bytes(self.bytes()?)).ok(),
            6 => {
                self.skip(4, "value")?;
                None
            }
            8 => {
                let n = self.length()?;
                self.skip(n, "string")?;
                None
            }
            9 => {
                self.array(depth)?;
                None
            }
            10 => Some(self.u64()?),
            11 => u64::try_from(i64::from_le_bytes(self.bytes()?)).ok(),
            12 => {
                self.skip(8, "value")?;
                None
            }
            other => return Err(format!("unknown metadata value type {other}")),
        })
    }

    fn array(&mut self, depth: usize) -> std::result::Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("metadata arrays nested deeper than {MAX_DEPTH}"));
        }
        let kind = self.u32()?;
        let n = self.length()?;
        let fixed = match kind {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match fixed {
            Some(size) => self.skip(n.saturating_mul(size), "array"),
            None => {
                // Strings and arrays take at least a length prefix each.
                self.fits(n.saturating_mul(4), "array")?;
                for _ in 0..n {
                    self.value(kind, depth + 1)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal GGUF v3 file: `entries` metadata (key, type, value bytes), then one F32 tensor
    /// of `dims` at offset 0, then `data` bytes.
    fn file(entries: &[(&str, u32, Vec<u8>)], dims: &[u64], data: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(0x4655_4747u32.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend((entries.len() as u64).to_le_bytes());
        for (k, t, v) in entries {
            b.extend((k.len() as u64).to_le_bytes());
            b.extend(k.as_bytes());
            b.extend(t.to_le_bytes());
            b.extend(v);
        }
        b.extend(1u64.to_le_bytes());
        b.push(b'w');
        b.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().div_ceil(32) * 32 + data, 0);
        b
    }

    fn run(bytes: &[u8]) -> std::result::Result<(), String> {
        check(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn accepts_a_well_formed_file_and_candle_agrees() {
        let bytes = file(
            &[
                ("general.architecture", 8, string("llama")),
                ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()),
            ],
            &[4, 2],
            32,
        );
        run(&bytes).unwrap();
        let content = Content::read(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!(content.tensor_infos["w"].shape.dims(), &[2, 4]);
    }

    #[test]
    fn refuses_what_would_panic_or_allocate_in_candle() {
        let align0 = file(
            &[("general.alignment", 4, 0u32.to_le_bytes().to_vec())],
            &[1],
            4,
        );
        assert!(run(&align0).unwrap_err().contains("alignment"));
        let overflow = file(&[], &[u64::MAX, 3], 0);
        assert!(run(&overflow).unwrap_err().contains("overflow"));
        let past_end = file(&[], &[1024], 16);
        assert!(run(&past_end).unwrap_err().contains("past the end"));
        let mut huge_string = file(&[("k", 8, string("v"))], &[1], 4);
        // Claim a 2^60-byte value string.
        let at = 24 + 8 + 1 + 4;
        huge_string[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(run(&huge_string).unwrap_err().contains("remain"));
        let mut array = 9u32.to_le_bytes().to_vec(); // array of arrays, nested past the bound
        for _ in 0..MAX_DEPTH {
            array.extend(1u64.to_le_bytes());
            array.extend(9u32.to_le_bytes());
        }
        array.extend(0u64.to_le_bytes());
        let nested = file(&[("k", 9, array)], &[1], 4);
        assert!(run(&nested).unwrap_err().contains("nested"));
        for cut in [0, 3, 7, 30] {
            assert!(run(&align0[..cut]).is_err(), "truncated at {cut}");
        }
    }
}
