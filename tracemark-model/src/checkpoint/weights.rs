//! The safetensors files of a checkpoint: which files, mapped into memory, every tensor the
//! model needs checked for presence, dtype and shape before candle reads any of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

/// The index of a sharded checkpoint: tensor name to file name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Most safetensors files one checkpoint may have.
const MAX_FILES: usize = 4096;

/// The safetensors files of the checkpoint in `dir`: those the index names, else every
/// `*.safetensors` in the directory, sorted.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let index = dir.join(INDEX_FILE);
    let names: BTreeSet<String> = if index.is_file() {
        let bytes = std::fs::read(&index).map_err(|e| format!("{INDEX_FILE}: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{INDEX_FILE}: {e}"))?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| format!("{INDEX_FILE}: no weight_map object"))?;
        let mut names = BTreeSet::new();
        for file in map.values() {
            let file = file
                .as_str()
                .ok_or_else(|| format!("{INDEX_FILE}: a weight_map value is not a string"))?;
            // The index must not point outside the checkpoint.
            if file.contains(['/', '\\']) || file == ".." || file.is_empty() {
                return Err(format!(
                    "{INDEX_FILE}: '{}' is not a file name in the checkpoint",
                    file.escape_debug()
                ));
            }
            names.insert(file.to_string());
        }
        names
    } else {
        let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        for entry in entries {
            let name = entry.map_err(|e| e.to_string())?.file_name();
            if let Some(name) = name.to_str().filter(|n| n.ends_with(".safetensors")) {
                names.insert(name.to_string());
            }
        }
        names
    };
    if names.is_empty() {
        return Err("no *.safetensors weights".into());
    }
    if names.len() > MAX_FILES {
        return Err(format!(
            "{} safetensors files (at most {MAX_FILES})",
            names.len()
        ));
    }
    // A device or FIFO is refused rather than mapped or waited on.
    if let Some(odd) = names.iter().find(|n| !dir.join(n).is_file()) {
        return Err(format!("{} is not a regular file", odd.escape_debug()));
    }
    let files = names.into_iter().map(|n| dir.join(n)).collect();
    Ok(files)
}

/// Maps the files and checks that each of `expected` (name, shape) is there in f32, bf16 or
/// f16 with that shape; returns a builder that reads them as f32 on the CPU.
pub fn open(
    files: &[PathBuf],
    expected: &[(String, Vec<usize>)],
) -> Result<VarBuilder<'static>, String> {
    // SAFETY: the mapping is read-only and the tensors are copied out of it (converted to f32)
    // while loading, before `load` returns; safetensors checks that every tensor's offsets lie
    // inside the file. What mmap cannot rule out is another process truncating or rewriting a
    // file while it is mapped (undefined behaviour in principle, SIGBUS in practice): the
    // checkpoint is a directory the operator chose to audit, not one written concurrently.
    // Reading multi-gigabyte weights into memory instead would double the peak memory.
    let tensors =
        unsafe { MmapedSafetensors::multi(files) }.map_err(|e| crate::error::candle_message(&e))?;
    for (name, shape) in expected {
        let view = tensors
            .get(name)
            .map_err(|_| format!("missing tensor {name}"))?;
        let dtype = DType::try_from(view.dtype()).ok();
        if !matches!(dtype, Some(DType::F32 | DType::BF16 | DType::F16)) {
            return Err(format!(
                "tensor {name} is {:?} (supported: F32, BF16, F16)",
                view.dtype()
            ));
        }
        if view.shape() != shape.as_slice() {
            return Err(format!(
                "tensor {name} has shape {:?}, the config implies {shape:?}",
                view.shape()
            ));
        }
    }
    Ok(VarBuilder::from_backend(
        Box::new(tensors),
        DType::F32,
        Device::Cpu,
    ))
}
