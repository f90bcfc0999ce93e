#include "reference/cpu_reference.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace deconvtune {

std::vector<double> cpu_reference(const Problem& p, const std::vector<double>& x,
                                  const std::vector<double>& w, const std::vector<double>& bias) {
  if (x.size() != static_cast<size_t>(p.x_elements()) ||
      w.size() != static_cast<size_t>(p.w_elements()) ||
      bias.size() != static_cast<size_t>(p.bias ? p.out_channels : 0)) {
    throw std::invalid_argument(
        fmt::format("cpu_reference: tensor sizes do not match {}", p.key()));
  }
  const int64_t oh_size = p.out_height(), ow_size = p.out_width();
  const int64_t ci_per_group = p.in_channels / p.groups, co_per_group = p.out_channels / p.groups;
  const bool nhwc = p.layout == Layout::kNhwc;
  auto x_at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return nhwc ? ((n * p.height + h) * p.width + w) * p.in_channels + c
                : ((n * p.in_channels + c) * p.height + h) * p.width + w;
  };
  auto y_at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return nhwc ? ((n * oh_size + h) * ow_size + w) * p.out_channels + c
                : ((n * p.out_channels + c) * oh_size + h) * ow_size + w;
  };
  // A 16-bit problem's kernels read its inputs rounded to that type: so does the reference.
  auto as_read = [&](double v) {
    return p.dtype == DType::kFloat32
               ? v
               : static_cast<double>(round_to(p.dtype, static_cast<float>(v)));
  };
  std::vector<double> y(p.y_elements(), 0.0);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t ci = 0; ci < p.in_channels; ++ci) {
      const int64_t group = ci / ci_per_group;
      for (int64_t ih = 0; ih < p.height; ++ih)
        for (int64_t iw = 0; iw < p.width; ++iw) {
          const double xv = as_read(x[x_at(n, ci, ih, iw)]);
          for (int64_t j = 0; j < co_per_group; ++j)
            for (int64_t kh = 0; kh < p.kernel.h; ++kh) {
              const int64_t oh = ih * p.stride.h - p.padding.h + kh * p.dilation.h;
              if (oh < 0 || oh >= oh_size) continue;
              for (int64_t kw = 0; kw < p.kernel.w; ++kw) {
                const int64_t ow = iw * p.stride.w - p.padding.w + kw * p.dilation.w;
                if (ow < 0 || ow >= ow_size) continue;
                const int64_t co = group * co_per_group + j;
                y[y_at(n, co, oh, ow)] +=
                    xv * as_read(w[((ci * co_per_group + j) * p.kernel.h + kh) * p.kernel.w + kw]);
              }
            }
        }
    }
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t co = 0; co < p.out_channels; ++co)
      for (int64_t oh = 0; oh < oh_size; ++oh)
        for (int64_t ow = 0; ow < ow_size; ++ow) {
          double& v = y[y_at(n, co, oh, ow)];
          v = p.epilogue.apply(p.bias ? v + as_read(bias[co]) : v);
        }
  return y;
}

}  // namespace deconvtune
