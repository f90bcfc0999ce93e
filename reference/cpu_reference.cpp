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
  std::vector<double> y(p.y_elements(), 0.0);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t ci = 0; ci < p.in_channels; ++ci) {
      const int64_t group = ci / ci_per_group;
      for (int64_t ih = 0; ih < p.height; ++ih)
        for (int64_t iw = 0; iw < p.width; ++iw) {
          const double xv = x[((n * p.in_channels + ci) * p.height + ih) * p.width + iw];
          for (int64_t j = 0; j < co_per_group; ++j)
            for (int64_t kh = 0; kh < p.kernel.h; ++kh) {
              const int64_t oh = ih * p.stride.h - p.padding.h + kh * p.dilation.h;
              if (oh < 0 || oh >= oh_size) continue;
              for (int64_t kw = 0; kw < p.kernel.w; ++kw) {
                const int64_t ow = iw * p.stride.w - p.padding.w + kw * p.dilation.w;
                if (ow < 0 || ow >= ow_size) continue;
                const int64_t co = group * co_per_group + j;
                y[((n * p.out_channels + co) * oh_size + oh) * ow_size + ow] +=
                    xv * w[((ci * co_per_group + j) * p.kernel.h + kh) * p.kernel.w + kw];
              }
            }
        }
    }
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t co = 0; co < p.out_channels; ++co)
      for (int64_t i = 0; i < oh_size * ow_size; ++i) {
        double& v = y[(n * p.out_channels + co) * oh_size * ow_size + i];
        v = p.epilogue.apply(p.bias ? v + bias[co] : v);
      }
  return y;
}

}  // namespace deconvtune
