#include <cmath>
#include <limits>

#include "codegen/epilogue.hpp"
#include "fuzz/fuzz_support.hpp"

namespace deconvtune::fuzz {
namespace {}  // namespace

void epilogue_target(std::string_view data) {
  Epilogue chain;
  try {
    chain = Epilogue::parse(data);
  } catch (const std::invalid_argument& e) {
    require(std::string_view(e.what()).find("epilogue") != std::string_view::npos,
            std::string("a refusal that does not say it is about the epilogue: ") + e.what());
    return;
  }
  const std::string text = chain.text();
  const Epilogue again = Epilogue::parse(text);
  require(again == chain, "text() does not round-trip: " + text);
  require(again.text() == text, "text() is not canonical: " + text + " vs " + again.text());
  for (const EpilogueOp& op : chain.ops()) {
    for (double arg : op.args) {
      require(std::isfinite(arg) && std::fabs(arg) <= std::numeric_limits<float>::max(),
              "an argument outside the fp32 range was accepted: " + text);
      require(arg == 0.0 || std::fabs(arg) >= std::numeric_limits<float>::min(),
              "an argument fp32 would flush was accepted: " + text);
    }
  }
  require(!chain.cuda_statements("v", false).empty() || chain.ops().empty(), "no fp32 statements");
  require(!chain.cuda_statements("v", true).empty() || chain.ops().empty(), "no fp64 statements");
  // PyTorch propagates NaN through every op of the chain, clamps included.
  require(std::isnan(chain.apply(std::numeric_limits<double>::quiet_NaN())),
          "NaN does not propagate through " + text);
  for (double v : {-1e30, -3.0, -0.0, 0.5, 40.0, 1e30}) chain.apply(v);
}

}  // namespace deconvtune::fuzz
