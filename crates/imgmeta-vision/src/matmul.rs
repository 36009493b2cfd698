//! A bounds-checked, single-threaded matrix product over strided views of plain slices, on
//! top of `gemm` (the crate candle itself uses, here with its AVX-512 kernels enabled).
//!
//! The kernels call it once per block or per attention head, each on its own rayon task,
//! so it never spawns threads itself. One of the crate's two `unsafe` blocks (the other is
//! the convolutions' write-once output in `gemm_conv.rs`): `gemm` takes raw pointers and
//! strides, and [`Mat::new`] checks that every addressed element is in bounds.

/// A read-only `rows x cols` matrix whose element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// Panics if an element the strides address lies outside `data`.
    pub fn new(data: &'a [f32], (rows, cols): (usize, usize), (rs, cs): (usize, usize)) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            assert!(
                last < data.len(),
                "matrix {rows} x {cols} with strides ({rs}, {cs}) needs {} values, has {}",
                last + 1,
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A contiguous row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, (rows, cols), (cols, 1))
    }

    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Rows `first..first + count`, without moving data. Panics if they are not all rows of
    /// this matrix.
    pub fn row_range(self, first: usize, count: usize) -> Self {
        assert!(
            first + count <= self.rows,
            "rows {first}..{} of {}",
            first + count,
            self.rows
        );
        Self {
            data: match count {
                0 => &self.data[..0],
                _ => &self.data[first * self.rs..],
            },
            rows: count,
            ..self
        }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            data: self.data,
        }
    }
}

/// `dst = lhs x rhs` (or `dst += lhs x rhs` with `accumulate`), row-major in `dst` with
/// `dst_rs` values between rows.
#[allow(unsafe_code)]
pub fn matmul(dst: &mut [f32], dst_rs: usize, lhs: Mat<'_>, rhs: Mat<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(
        rhs.rows, k,
        "matmul: inner dimensions {k} and {} differ",
        rhs.rows
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n,
        "matmul: rows of {n} values overlap at stride {dst_rs}"
    );
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "matmul: dst is too short for {m} x {n} at stride {dst_rs}"
    );
    let stride = |v: usize| isize::try_from(v).expect("matrix strides fit in isize");
    // SAFETY: `Mat::new` checked that every element of `lhs` and `rhs` the strides address
    // is inside its slice, and the assertions above do the same for `dst` (row stride at
    // least the row length, so rows do not overlap). `dst` is borrowed mutably, so it
    // aliases neither input; `dst` is initialised memory, so reading it (`accumulate`) is
    // sound too.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_rs),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.cs),
            stride(lhs.rs),
            rhs.data.as_ptr(),
            stride(rhs.cs),
            stride(rhs.rs),
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_reads_a_column_window_of_a_wider_matrix() {
        // lhs 2x3, rhs 3x5 of which columns 1..3 are used.
        let lhs = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let rhs: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let mut dst = [0f32; 4];

        matmul(
            &mut dst,
            2,
            Mat::rows(&lhs, 2, 3),
            Mat::new(&rhs[1..], (3, 2), (5, 1)),
            false,
        );

        // Columns 1 and 2 of rhs: [1, 6, 11] and [2, 7, 12].
        assert_eq!(dst, [46.0, 52.0, 10.0, 10.0]);
    }

    #[test]
    fn transposed_views_and_a_strided_destination() {
        // a (2x3) stored transposed: a^T is 3x2 row-major.
        let a_t = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
        let mut dst = [-1f32; 6]; // 2 rows of 2 at stride 3

        matmul(
            &mut dst,
            3,
            Mat::rows(&a_t, 3, 2).t(),
            Mat::rows(&b, 3, 2),
            false,
        );

        // a = [[1,2,3],[4,5,6]]; a x b = [[4, 5], [10, 11]]; column 2 untouched.
        assert_eq!(dst, [4.0, 5.0, -1.0, 10.0, 11.0, -1.0]);

        matmul(
            &mut dst,
            3,
            Mat::rows(&a_t, 3, 2).t(),
            Mat::rows(&b, 3, 2),
            true,
        );

        assert_eq!(dst, [8.0, 10.0, -1.0, 20.0, 22.0, -1.0]);
    }

    #[test]
    #[should_panic(expected = "needs")]
    fn a_view_past_the_end_of_its_slice_is_refused() {
        let data = [0f32; 5];
        let _ = Mat::new(&data, (2, 3), (3, 1));
    }
}
