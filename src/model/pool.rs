//! The one pooling function: token vectors and attention mask in, unit sentence vectors out.
//!
//! Every caller (the native indexer, the browser engine, the GPU path's reference checks)
//! goes through [`pool`], so the vectors of an index and of a query are made the same way.

use candle_core::{DType, Tensor, D};

use super::config::Pooling;
use crate::Result;

/// Pools `hidden` (`batch x seq x dim`) under `mask` (`batch x seq`, 1 for real tokens,
/// 0 for padding) and L2-normalises each row. Returns `batch x dim`.
pub fn pool(hidden: &Tensor, mask: &Tensor, mode: Pooling) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let pooled = match mode {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let m = mask.unsqueeze(D::Minus1)?; // b x s x 1
            let summed = hidden.broadcast_mul(&m)?.sum(1)?; // b x d
                                                            // Clamp as sentence-transformers does, so an all-padding row cannot divide by 0.
            let counts = mask.sum_keepdim(1)?.clamp(1e-9f32, f32::MAX)?; // b x 1
            summed.broadcast_div(&counts)?
        }
        Pooling::Max => {
            // Padding positions get a large negative value so they never win the maximum.
            let m = mask.unsqueeze(D::Minus1)?;
            let penalty = ((m.ones_like()? - &m)? * -1e9f64)?;
            hidden.broadcast_add(&penalty)?.max(1)?
        }
    };
    l2_normalize(&pooled)
}

/// Divides every row by its Euclidean norm (rows of zeros stay zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}
