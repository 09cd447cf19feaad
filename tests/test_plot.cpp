// Training curves as SVG (vit/plot.hpp): nice ticks, the charts' structure and escaping, reading
// metrics.jsonl (validation absent, a torn last line), the confusion heat map and its colour map;
// `vit plot` is Cli.PlotWritesAnSvgOfRuns.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "idx_writer.hpp"
#include "report/colormaps.hpp"
#include "test_util.hpp"
#include "vit/plot.hpp"

namespace vit::test {
namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(Plot, NiceTicksCoverTheRangeInRoundSteps) {
  EXPECT_EQ(nice_ticks(0.0, 1.0, 5), (std::vector<double>{0, 0.5, 1.0}));  // 0.25 is no 1-2-5 step
  const std::vector<double> t = nice_ticks(0.31, 0.97, 5);                 // step 0.2: 0.2 .. 1.0
  ASSERT_GE(t.size(), 2u);
  EXPECT_LE(t.front(), 0.31);
  EXPECT_GE(t.back(), 0.97);
  const double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.2, 1e-12);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, 1e-12);
  // Epochs 1..50: steps of 10 (1, 2 or 5 times a power of ten).
  const std::vector<double> e = nice_ticks(1, 50, 6);
  EXPECT_NEAR(e[1] - e[0], 10, 1e-12);
  EXPECT_LE(e.front(), 1);
  EXPECT_GE(e.back(), 50);
  // A flat curve still gets an axis.
  const std::vector<double> flat = nice_ticks(3, 3, 5);
  EXPECT_LT(flat.front(), 3);
  EXPECT_GT(flat.back(), 3);
  // ... on its own scale: a constant learning rate of 5e-3 is not drawn on an axis from -0.5 to 1.
  const std::vector<double> lr = nice_ticks(5e-3, 5e-3, 5);
  EXPECT_LT(lr.front(), 5e-3);
  EXPECT_GT(lr.back(), 5e-3);
  EXPECT_GE(lr.front(), 0.0);
  EXPECT_LE(lr.back(), 1e-2);
  // Two epochs: ticks 1 and 2, not 1.2, 1.4...
  EXPECT_EQ(nice_ticks(1, 2, 6, 1), (std::vector<double>{1, 2}));
  expect_error([] { nice_ticks(1, 0); }, "lo <= hi");
}

TEST(Plot, ChartsAreWellFormedSvgWithEveryCurveAndLabel) {
  Chart c{"Loss <&>", "epoch", "cross-entropy", {}};
  c.curves.push_back({"train", {1, 2, 3}, {2.0, 1.0, 0.5}, 0, 0});
  c.curves.push_back({"val \"a\"", {1, 2, 3}, {2.5, NAN, 0.7}, 1, 1});  // broken at the NaN
  const std::string svg = svg_charts({c, c});
  EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"840\""));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_EQ(count(svg, "<g>"), 2);
  EXPECT_EQ(count(svg, "</g>"), 2);
  EXPECT_EQ(count(svg, "<polyline"), 2 * (1 + 2)) << "train whole, val in two pieces";
  EXPECT_EQ(count(svg, "<circle"), 2 * (3 + 2)) << "a dot per finite point";
  EXPECT_EQ(count(svg, "Loss &lt;&amp;&gt;"), 2) << "titles escaped";
  EXPECT_EQ(count(svg, "val &quot;a&quot;"), 2);
  EXPECT_EQ(svg.find("Loss <&>"), std::string::npos);
  EXPECT_EQ(count(svg, "stroke-dasharray=\"6 3\""), 2 * (2 + 1)) << "dashed val and its legend";
  expect_error([] { svg_charts({}); }, "needs a chart");
  // Two epochs: whole ticks on the epoch axis.
  const std::string two = svg_charts({Chart{"Loss", "epoch", "y", {{"a", {1, 2}, {1, 3}, 0, 0}}}});
  EXPECT_EQ(count(two, "text-anchor=\"middle\">2</text>"), 1) << two;
  EXPECT_EQ(count(two, ">1.5</text>"), 1) << "the y axis keeps its steps";
  EXPECT_EQ(count(two, "text-anchor=\"middle\">1.5</text>"), 0) << two;
}

// viridis from its published table (matplotlib's first and last entries), and the heat map: a cell
// per pair coloured by its share of the true class, its count in it, names escaped.
TEST(Plot, ConfusionHeatMap) {
  EXPECT_EQ(report::colour_hex(report::kViridis, 0.0), "#440154");
  EXPECT_EQ(report::colour_hex(report::kViridis, 1.0), "#fde725");
  EXPECT_EQ(report::colour_hex(report::kInferno, 1.0), "#fcffa4");
  EXPECT_EQ(report::colour_hex(report::kViridis, NAN), "#440154");
  const std::vector<std::vector<int64_t>> m = {{8, 2, 0}, {0, 10, 0}, {1, 1, 3}};
  const std::string svg = svg_confusion(m, {"cat", "dog", "<fox>"}, "test & more");
  EXPECT_EQ(count(svg, "<title>"), 9 + 2 * 3) << "a tooltip per cell and per name";
  EXPECT_NE(svg.find("<title>cat as dog: 2</title>"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#fde725\"><title>dog as dog: 10</title>"), std::string::npos)
      << "a whole row in one cell is the top of the map";
  EXPECT_NE(svg.find("fill=\"#440154\"><title>dog as cat: 0</title>"), std::string::npos);
  EXPECT_NE(svg.find(">&lt;fox&gt;<"), std::string::npos);
  EXPECT_NE(svg.find(">test &amp; more<"), std::string::npos);
  EXPECT_EQ(count(svg, "<svg"), 1);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  // A long name is cut to 23 characters (a 2-byte one counted once), whole in its tooltip.
  const std::string dog = "German shepherd, German shepherd dog, alsatian";
  const std::string l = svg_confusion(m, {"\u00e9" + dog, "dog", "fox"}, "t");
  EXPECT_EQ(count(l, "<title>\u00e9" + dog + "</title>\u00e9German shepherd, Germ\u2026</text>"), 2)
      << l;
  expect_error([&] { svg_confusion(m, {"a"}, ""); }, "1 class names for a 3 x 3 matrix");
  expect_error([] { svg_confusion({{1, 2}, {3}}, {"a", "b"}, ""); }, "not square");
}

TEST(Plot, TrainingCurvesFromRunDirectories) {
  TempDir dir("plot");
  std::filesystem::create_directories(dir / "a");
  std::filesystem::create_directories(dir / "b");
  auto line = [](int epoch, const char* val) {
    return "{\"epoch\":" + std::to_string(epoch) +
           ",\"train_loss\":1.5,\"train_acc\":0.5,\"val_loss\":" + val + ",\"val_acc\":" + val +
           ",\"test_loss\":1.2,\"test_acc\":0.6,\"lr\":0.001,\"seconds\":1,\"img_per_s\":100,"
           "\"data_share\":0.01}\n";
  };
  // a: no validation split, and a torn last line (a crash mid-write); b: with validation.
  std::ofstream(dir / "a/metrics.jsonl") << line(1, "null") << line(2, "null") << "{\"epoch\":3,";
  std::ofstream(dir / "b/metrics.jsonl") << line(1, "0.9") << line(2, "0.8");
  const std::vector<EpochMetrics> a = read_metrics(dir / "a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_FALSE(a[0].val_loss.has_value());
  EXPECT_DOUBLE_EQ(a[1].test_acc.value(), 0.6);
  EXPECT_DOUBLE_EQ(*read_metrics(dir / "b")[1].val_loss, 0.8);
  const std::string svg = training_curves_svg({dir / "a", dir / "b"}, {});
  // Loss and accuracy: a's train and test, b's train, val and test; lr: one each.
  EXPECT_EQ(count(svg, "<polyline"), 2 * 5 + 2);
  for (const char* label : {">a train<", ">a test<", ">b val<", ">Learning rate<", ">epoch<"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_EQ(svg.find(">a val<"), std::string::npos) << "a has no validation split";
  // c: epoch 2 without test numbers (eval_every 2 over 3 epochs): the test curves join epochs 1
  // and 3 in one line each (loss and accuracy: train and test; lr: one).
  std::filesystem::create_directories(dir / "c");
  std::string skipped = line(2, "null");
  skipped.replace(skipped.find("\"test_loss\":1.2,\"test_acc\":0.6"), 30,
                  "\"test_loss\":null,\"test_acc\":null");
  std::ofstream(dir / "c/metrics.jsonl") << line(1, "null") << skipped << line(3, "null");
  const std::vector<EpochMetrics> c = read_metrics(dir / "c");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_FALSE(c[1].test_acc.has_value());
  EXPECT_FALSE(c[1].test_loss.has_value());
  EXPECT_EQ(count(training_curves_svg({dir / "c"}, {}), "<polyline"), 2 * 2 + 1);
  expect_error([&] { read_metrics(dir / "none"); }, "has no metrics.jsonl");
  std::ofstream(dir / "b/metrics.jsonl") << "not json\n" << line(1, "0.9");
  expect_error([&] { read_metrics(dir / "b"); }, "is not valid JSON");
}

}  // namespace
}  // namespace vit::test
