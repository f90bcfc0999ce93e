#pragma once
// The tensors' element type and memory layout. x, W, bias and y share one data type; the kernels
// accumulate and run the epilogue in fp32 whatever it is, and round once, on the store of y.
#include <cstdint>
#include <string_view>

namespace deconvtune {

enum class DType { kFloat32, kBFloat16, kFloat16 };
// NCHW: contiguous; NHWC: channels_last (PyTorch's torch.channels_last) for x and y. W keeps
// ConvTranspose2d's [CI, CO / groups, KH, KW] either way, as PyTorch's channels_last modules do
// not reorder a transposed convolution's weight for the kernels that read it.
enum class Layout { kNchw, kNhwc };

std::string_view to_string(DType dtype);    // "float32", "bfloat16", "float16" (torch's names)
std::string_view to_string(Layout layout);  // "NCHW", "NHWC"
// Throw std::invalid_argument listing the accepted names.
DType parse_dtype(std::string_view text);
Layout parse_layout(std::string_view text);

int element_bytes(DType dtype);
// The unit roundoff u of rounding to nearest into the type (2^-24, 2^-8, 2^-11): |round(v) - v|
// <= u |v| for v in the normal range; the verifier's bound for a 16-bit y adds u |y|.
double unit_roundoff(DType dtype);

// IEEE binary16 and bfloat16 bits from fp32, rounded to nearest even (as cvt.rn does on the GPU),
// and back (exact). The host fills and reads 16-bit tensors with these.
uint16_t to_bits(DType dtype, float value);  // dtype must be 16-bit
float from_bits(DType dtype, uint16_t bits);
// value rounded to the type and widened back: the value a kernel reads for it.
float round_to(DType dtype, float value);

}  // namespace deconvtune
