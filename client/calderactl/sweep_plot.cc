#include "client/calderactl/sweep_plot.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/xml_escape.h"

namespace caldera::cli {
namespace {

constexpr double kPanelWidth = 480;
constexpr double kHeight = 430;
constexpr double kLeft = 72, kRight = 24, kTop = 56, kBottom = 60;

std::string Num(double v) { return absl::StrFormat("%.2f", v); }

std::string TickLabel(double v, double step) {
  // The fewest decimals that write the step exactly (0.25 needs two).
  int decimals = 0;
  while (decimals < 6) {
    const double scale = std::pow(10.0, decimals);
    if (std::abs(std::round(step * scale) - step * scale) < 1e-6) break;
    ++decimals;
  }
  return absl::StrFormat("%.*f", decimals, v);
}

// 1-2-5 ticks v (v = m·10^k, m in {1, 2, 5}) from the largest <= lo to the
// smallest >= hi (lo > 0).
std::vector<double> LogTicks(double lo, double hi) {
  std::vector<double> ticks;
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); ticks.size() < 60;
       decade *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * decade;
      if (v <= lo * (1 + 1e-12)) ticks.clear();  // keep only the last one <= lo
      ticks.push_back(v);
      if (v >= hi * (1 - 1e-12)) return ticks;
    }
  }
  return ticks;
}

// One panel at horizontal offset `x0`: y = value(point), curve y = f(bits).
// With `log_y` the values are positive and the y axis is logarithmic.
std::string Panel(double x0, const std::string& y_title, const std::vector<SweepPlotPoint>& points,
                  const std::function<double(const SweepPlotPoint&)>& raw_value,
                  const std::function<double(double)>* raw_curve, double raw_original,
                  const std::string& color, bool log_y) {
  // Everything below works on t = log(v) when log_y.
  auto T = [log_y](double v) { return log_y ? std::log(v) : v; };
  auto value = [&](const SweepPlotPoint& p) { return T(raw_value(p)); };
  const double original = T(raw_original);
  std::function<double(double)> curve_fn;
  if (raw_curve != nullptr) curve_fn = [&](double bits) { return T((*raw_curve)(bits)); };
  const std::function<double(double)>* curve = raw_curve != nullptr ? &curve_fn : nullptr;
  double bmin = 1e300, bmax = -1e300, ymin = original, ymax = original;
  for (const SweepPlotPoint& p : points) {
    bmin = std::min(bmin, p.bits);
    bmax = std::max(bmax, p.bits);
    ymin = std::min(ymin, value(p));
    ymax = std::max(ymax, value(p));
  }
  if (points.empty()) bmin = 2, bmax = 4;
  const std::vector<double> xt = NiceTicks(bmin - 0.25, bmax + 0.25, 6);
  const double xlo = xt.front(), xhi = xt.back();
  constexpr int kSamples = 120;
  std::vector<std::pair<double, double>> samples;
  if (curve != nullptr) {
    for (int i = 0; i <= kSamples; ++i) {
      const double bits = xlo + (xhi - xlo) * i / kSamples;
      if (bits <= 0) continue;
      const double y = (*curve)(bits);
      if (!std::isfinite(y)) continue;
      samples.emplace_back(bits, y);
    }
    // The curve may run far off at the left edge: widen the y range by at
    // most a fifth of the data's span (the rest is clipped).
    const double span = std::max(ymax - ymin, 1e-9);
    const double lo = ymin - 0.2 * span, hi = ymax + 0.2 * span;
    for (const auto& [b, y] : samples) {
      ymin = std::min(ymin, std::max(y, lo));
      ymax = std::max(ymax, std::min(y, hi));
    }
  }
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  // Tick positions (in t) and their labels.
  std::vector<double> yt;
  std::vector<std::string> ylabels;
  if (log_y) {
    for (double v : LogTicks(std::exp(ymin), std::exp(ymax))) {
      yt.push_back(std::log(v));
      ylabels.push_back(absl::StrFormat("%g", v));
    }
  } else {
    yt = NiceTicks(ymin, ymax, 6);
    const double step = yt.size() > 1 ? yt[1] - yt[0] : 1;
    for (double t : yt) ylabels.push_back(TickLabel(t, step));
  }
  const double ylo = yt.front(), yhi = yt.back();
  const double px0 = x0 + kLeft, px1 = x0 + kPanelWidth - kRight;
  const double py0 = kHeight - kBottom, py1 = kTop;  // py0: bottom
  auto X = [&](double b) { return px0 + (b - xlo) / (xhi - xlo) * (px1 - px0); };
  auto Y = [&](double v) { return py0 - (v - ylo) / (yhi - ylo) * (py0 - py1); };

  std::string s = absl::StrCat("<g class=\"panel\">\n");
  absl::StrAppend(&s, "<clipPath id=\"clip", static_cast<int>(x0), "\"><rect x=\"", Num(px0),
                  "\" y=\"", Num(py1), "\" width=\"", Num(px1 - px0), "\" height=\"",
                  Num(py0 - py1), "\"/></clipPath>\n");
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double t : xt) {
    absl::StrAppend(&s, "<line class=\"grid\" x1=\"", Num(X(t)), "\" y1=\"", Num(py0), "\" x2=\"",
                    Num(X(t)), "\" y2=\"", Num(py1),
                    "\" stroke=\"#e5e5e5\"/>\n<line class=\"tick\" x1=\"", Num(X(t)), "\" y1=\"",
                    Num(py0), "\" x2=\"", Num(X(t)), "\" y2=\"", Num(py0 + 5),
                    "\" stroke=\"black\"/>\n<text class=\"tick-label\" x=\"", Num(X(t)), "\" y=\"",
                    Num(py0 + 18), "\" text-anchor=\"middle\">", TickLabel(t, xstep), "</text>\n");
  }
  for (size_t i = 0; i < yt.size(); ++i) {
    const double t = yt[i];
    absl::StrAppend(&s, "<line class=\"grid\" x1=\"", Num(px0), "\" y1=\"", Num(Y(t)), "\" x2=\"",
                    Num(px1), "\" y2=\"", Num(Y(t)),
                    "\" stroke=\"#e5e5e5\"/>\n<line class=\"tick\" x1=\"", Num(px0 - 5), "\" y1=\"",
                    Num(Y(t)), "\" x2=\"", Num(px0), "\" y2=\"", Num(Y(t)),
                    "\" stroke=\"black\"/>\n<text class=\"tick-label\" x=\"", Num(px0 - 8),
                    "\" y=\"", Num(Y(t) + 4), "\" text-anchor=\"end\">", ylabels[i], "</text>\n");
  }
  absl::StrAppend(&s, "<line class=\"axis\" x1=\"", Num(px0), "\" y1=\"", Num(py0), "\" x2=\"",
                  Num(px1), "\" y2=\"", Num(py0), "\" stroke=\"black\"/>\n");
  absl::StrAppend(&s, "<line class=\"axis\" x1=\"", Num(px0), "\" y1=\"", Num(py0), "\" x2=\"",
                  Num(px0), "\" y2=\"", Num(py1), "\" stroke=\"black\"/>\n");
  absl::StrAppend(&s, "<text class=\"axis-label\" x=\"", Num(0.5 * (px0 + px1)), "\" y=\"",
                  Num(kHeight - 18), "\" text-anchor=\"middle\">bits per parameter</text>\n");
  absl::StrAppend(&s, "<text class=\"axis-label\" x=\"", Num(x0 + 18), "\" y=\"",
                  Num(0.5 * (py0 + py1)), "\" text-anchor=\"middle\" transform=\"rotate(-90 ",
                  Num(x0 + 18), " ", Num(0.5 * (py0 + py1)), ")\">", XmlEscape(y_title),
                  "</text>\n");
  // The original model (16 bits) as a dashed horizontal line.
  absl::StrAppend(&s, "<line class=\"original\" x1=\"", Num(px0), "\" y1=\"", Num(Y(original)),
                  "\" x2=\"", Num(px1), "\" y2=\"", Num(Y(original)),
                  "\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n<text class=\"original-label\" "
                  "x=\"",
                  Num(px1 - 4), "\" y=\"", Num(Y(original) - 5),
                  "\" text-anchor=\"end\" fill=\"#666\">original (16 bit) ",
                  absl::StrFormat("%.4g", raw_original), "</text>\n");
  if (!samples.empty()) {
    std::string pts;
    for (const auto& [b, y] : samples) absl::StrAppend(&pts, Num(X(b)), ",", Num(Y(y)), " ");
    pts.pop_back();
    absl::StrAppend(&s, "<polyline class=\"fit\" clip-path=\"url(#clip", static_cast<int>(x0),
                    ")\" fill=\"none\" stroke=\"", color, "\" stroke-width=\"2\" points=\"", pts,
                    "\"/>\n");
  }
  for (const SweepPlotPoint& p : points) {
    absl::StrAppend(&s, "<circle class=\"point\" cx=\"", Num(X(p.bits)), "\" cy=\"",
                    Num(Y(value(p))), "\" r=\"4.5\" fill=\"white\" stroke=\"", color,
                    "\" stroke-width=\"2\"><title>", XmlEscape(p.label),
                    absl::StrFormat(": %.3f bits, %.5g", p.bits, raw_value(p)),
                    "</title></circle>\n");
  }
  absl::StrAppend(&s, "</g>\n");
  return s;
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  target = std::max(target, 2);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  const double first = std::floor(lo / step + 1e-9) * step;
  std::vector<double> ticks;
  for (double t = first;; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9 || ticks.size() > 100) break;
  }
  return ticks;
}

std::string RenderSweepSvg(const std::vector<SweepPlotPoint>& points, const CompressionLaw* law,
                           double original_loss, const std::string& title) {
  std::string s = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
      static_cast<int>(2 * kPanelWidth), "\" height=\"", static_cast<int>(kHeight),
      "\" viewBox=\"0 0 ", static_cast<int>(2 * kPanelWidth), " ", static_cast<int>(kHeight),
      "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text class=\"title\" x=\"",
      Num(kPanelWidth), "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", XmlEscape(title),
      "</text>\n");
  if (law != nullptr) {
    absl::StrAppend(&s, "<text class=\"subtitle\" x=\"", Num(kPanelWidth),
                    "\" y=\"40\" text-anchor=\"middle\" fill=\"#444\">",
                    XmlEscape(absl::StrFormat(
                        "fit: L = %.4f %s %.4g·(r−1) %s %.4g·(r−1)², r = 16/bits; "
                        "RMSE %.3g, max |residual| %.3g",
                        law->l0, law->b < 0 ? "−" : "+", std::abs(law->b), law->c < 0 ? "−" : "+",
                        std::abs(law->c), law->rmse, law->max_abs_residual)),
                    "</text>\n");
  }
  std::function<double(double)> loss_curve, ppl_curve;
  if (law != nullptr) {
    loss_curve = [law](double bits) { return law->LossAtBits(bits); };
    ppl_curve = [law](double bits) { return std::exp(law->LossAtBits(bits)); };
  }
  absl::StrAppend(&s, Panel(
                          0, "cross-entropy loss (nats/token)", points,
                          [](const SweepPlotPoint& p) { return p.loss; },
                          law != nullptr ? &loss_curve : nullptr, original_loss, "#1f77b4",
                          /*log_y=*/false));
  absl::StrAppend(&s, Panel(
                          kPanelWidth, "perplexity (log scale)", points,
                          [](const SweepPlotPoint& p) { return p.perplexity; },
                          law != nullptr ? &ppl_curve : nullptr, std::exp(original_loss), "#d62728",
                          /*log_y=*/true));
  absl::StrAppend(&s, "</svg>\n");
  return s;
}

}  // namespace caldera::cli
