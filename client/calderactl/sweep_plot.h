// sweep.svg of `calderactl sweep`: a hand-written SVG (no plotting library)
// with two panels, cross-entropy loss and perplexity against bits per
// parameter. Each panel has the measured points, the fitted compression law
// (sweep_fit.h; perplexity = exp(loss)) as a curve, the original model's value
// as a dashed line, axes with ticks, tick labels and axis titles (perplexity
// on a logarithmic axis, 1-2-5 ticks). Pure text: no I/O.
#ifndef CALDERA_CLIENT_CALDERACTL_SWEEP_PLOT_H_
#define CALDERA_CLIENT_CALDERACTL_SWEEP_PLOT_H_

#include <string>
#include <vector>

#include "client/calderactl/sweep_fit.h"

namespace caldera::cli {

struct SweepPlotPoint {
  double bits = 0;  // bits per parameter of the compressed linears
  double loss = 0;  // mean cross-entropy (nats)
  double perplexity = 0;
  std::string label;  // the settings, shown as a tooltip (<title>)
};

// The SVG document. `law` may be null (no curve drawn); `title` is printed
// above the panels. Every text is XML-escaped.
std::string RenderSweepSvg(const std::vector<SweepPlotPoint>& points, const CompressionLaw* law,
                           double original_loss, const std::string& title);

// "Nice" tick values (steps 1, 2, 2.5 or 5 times a power of ten) covering
// [lo, hi] with about `target` ticks; the first is <= lo and the last >= hi.
std::vector<double> NiceTicks(double lo, double hi, int target);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_SWEEP_PLOT_H_
