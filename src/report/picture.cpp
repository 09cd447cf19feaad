// Raster pictures: heat-map overlays and captioned panels, written as PNG with cairo.
#include "vit/picture.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "report/colormaps.hpp"
#include "vit/error.hpp"

#ifdef VIT_HAVE_CAIRO
#include <cairo.h>
#endif
#ifdef VIT_HAVE_RSVG
#include <librsvg/rsvg.h>
#endif

namespace vit {

RgbImage to_rgb(const uint8_t* pixels, int channels, int size, int scale) {
  VIT_CHECK(channels >= 1, "to_rgb: channels must be at least 1");
  VIT_CHECK(size >= 1 && scale >= 1, "to_rgb: size and scale must be at least 1");
  RgbImage out;
  out.width = out.height = size * scale;
  out.rgb.resize(size_t(out.width) * out.height * 3);
  const int64_t plane = int64_t(size) * size;
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      const int64_t src = int64_t(y / scale) * size + x / scale;
      uint8_t* o = &out.rgb[(size_t(y) * out.width + x) * 3];
      for (int ch = 0; ch < 3; ++ch) o[ch] = pixels[(channels >= 3 ? ch : 0) * plane + src];
    }
  }
  return out;
}

std::vector<double> upsample_map(const std::vector<double>& map, int grid, int size) {
  VIT_CHECK(grid >= 1 && map.size() == size_t(grid) * grid,
            "upsample_map: the map must hold grid x grid values");
  VIT_CHECK(size >= 1, "upsample_map: size must be at least 1");
  // Pixel p's centre (p + 0.5) in patch units is (p + 0.5) * grid / size; patch i's centre is
  // i + 0.5. So the position between centres is u = (p + 0.5) * grid / size - 0.5.
  auto coord = [&](int p, int* i0, int* i1, double* f) {
    const double u = std::clamp((p + 0.5) * grid / size - 0.5, 0.0, double(grid - 1));
    *i0 = int(u);
    *i1 = std::min(*i0 + 1, grid - 1);
    *f = u - *i0;
  };
  std::vector<double> out(size_t(size) * size);
  for (int y = 0; y < size; ++y) {
    int r0, r1;
    double fy;
    coord(y, &r0, &r1, &fy);
    for (int x = 0; x < size; ++x) {
      int c0, c1;
      double fx;
      coord(x, &c0, &c1, &fx);
      const double top = map[size_t(r0) * grid + c0] * (1 - fx) + map[size_t(r0) * grid + c1] * fx;
      const double bot = map[size_t(r1) * grid + c0] * (1 - fx) + map[size_t(r1) * grid + c1] * fx;
      out[size_t(y) * size + x] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}

RgbImage heat_overlay(const RgbImage& image, const std::vector<double>& map, int grid, double alpha,
                      double extent) {
  VIT_CHECK(image.width == image.height && image.width >= 1,
            "heat_overlay: the image must be square");
  VIT_CHECK(extent > 0 && extent <= 1, "heat_overlay: extent must be in (0, 1]");
  const int size = image.width;
  const int covered = std::max(1, int(std::lround(size * extent)));
  const std::vector<double> up = upsample_map(map, grid, covered);
  double hi = 0;
  for (double v : map) hi = std::max(hi, v);
  RgbImage out = image;
  for (size_t i = 0; i < size_t(size) * size; ++i) {
    const int y = int(i / size), x = int(i % size);
    const double heat = y < covered && x < covered ? up[size_t(y) * covered + x] : 0.0;
    const double t = hi > 0 ? heat / hi : 0.0;
    const uint8_t* c = report::kInferno[std::clamp(int(t * 255 + 0.5), 0, 255)];
    for (int ch = 0; ch < 3; ++ch) {
      const double v = (1 - alpha) * image.rgb[i * 3 + ch] + alpha * c[ch];
      out.rgb[i * 3 + ch] = uint8_t(std::clamp(v + 0.5, 0.0, 255.0));
    }
  }
  return out;
}

#ifdef VIT_HAVE_CAIRO

bool png_supported() {
  return true;
}

namespace {

constexpr int kMargin = 12, kTitleHeight = 30, kTitleLine = 20, kCaptionHeight = 24;
constexpr double kTitleSize = 16, kCaptionSize = 13;

// Owns a cairo (or librsvg) object: destroyed on every way out.
template <typename T, void (*Destroy)(T*)>
struct Owned {
  T* p = nullptr;
  explicit Owned(T* q) : p(q) {}
  Owned(Owned&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (p) Destroy(p);
  }
};

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// A width x height picture (RGB) painted white, with its drawing context; `who` names the caller
// in errors.
struct Canvas {
  Owned<cairo_surface_t, cairo_surface_destroy> surface;
  Owned<cairo_t, cairo_destroy> cr;
};
Canvas white_canvas(int width, int height, const char* who) {
  Owned<cairo_surface_t, cairo_surface_destroy> surface{
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height)};
  VIT_CHECK(cairo_surface_status(surface.p) == CAIRO_STATUS_SUCCESS,
            std::string(who) + ": cairo could not make a " + std::to_string(width) + " x " +
                std::to_string(height) + " picture (out of memory?)");
  Owned<cairo_t, cairo_destroy> cr{cairo_create(surface.p)};
  cairo_set_source_rgb(cr.p, 1, 1, 1);
  cairo_paint(cr.p);
  return Canvas{std::move(surface), std::move(cr)};
}

// The picture as the bytes of a PNG file.
std::string encode_png(cairo_surface_t* surface, const char* who) {
  cairo_surface_flush(surface);
  std::string png;
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface, append_bytes, &png);
  VIT_CHECK(st == CAIRO_STATUS_SUCCESS,
            std::string(who) + ": cairo could not encode the PNG: " + cairo_status_to_string(st));
  return png;
}

// text with the bytes that are not UTF-8 (a Latin-1 file name, say) as U+FFFD: given them, cairo
// would stop drawing anything more on the picture.
std::string drawable(const std::string& text) {
  return nlohmann::json::parse(
             nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

// How wide text (drawable) is in DejaVu Sans at size.
double text_width(cairo_t* cr, const std::string& text, double size) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, text.c_str(), &e);
  return e.x_advance;
}

// A title in at most two lines of max_width, broken at the last space that lets the first fit
// (the second is shortened when drawn).
std::vector<std::string> title_lines(const std::string& title, double size, double max_width) {
  Owned<cairo_surface_t, cairo_surface_destroy> scratch{
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1)};
  Owned<cairo_t, cairo_destroy> cr{cairo_create(scratch.p)};
  const std::string text = drawable(title);
  if (text_width(cr.p, text, size) <= max_width) return {text};
  for (size_t at = text.rfind(' '); at != std::string::npos && at > 0;
       at = text.rfind(' ', at - 1)) {
    if (text_width(cr.p, text.substr(0, at), size) <= max_width) {
      return {text.substr(0, at), text.substr(at + 1)};
    }
  }
  return {text};
}

// Text in DejaVu Sans at size, left edge x, baseline y, shortened with "..." to fit max_width
// (drawable: see there).
void draw_text(cairo_t* cr, std::string text, double x, double y, double size, double max_width) {
  text = drawable(text);
  std::string body = text;
  while (text_width(cr, text, size) > max_width && !body.empty()) {
    // One character (a whole UTF-8 sequence) less before the "...".
    while (!body.empty() && (uint8_t(body.back()) & 0xC0) == 0x80) body.pop_back();
    if (!body.empty()) body.pop_back();
    text = body + "...";
  }
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, text.c_str());
}

}  // namespace

std::string png_panels(const std::vector<Panel>& panels, int columns, const std::string& title) {
  VIT_CHECK(!panels.empty() && columns >= 1, "png_panels: no panels to draw");
  int cell_w = 0, cell_h = 0;
  for (const Panel& p : panels) {
    cell_w = std::max(cell_w, p.image.width);
    cell_h = std::max(cell_h, p.image.height);
  }
  columns = std::min<int>(columns, int(panels.size()));
  const int rows = (int(panels.size()) + columns - 1) / columns;
  const int width = kMargin + columns * (cell_w + kMargin);
  const std::vector<std::string> lines = title_lines(title, kTitleSize, width - 2 * kMargin);
  const int title_height = kTitleHeight + kTitleLine * (int(lines.size()) - 1);
  const int height = title_height + rows * (cell_h + kCaptionHeight + kMargin);
  VIT_CHECK(int64_t(width) * height <= (int64_t(1) << 28),
            "png_panels: the picture would be " + std::to_string(width) + " x " +
                std::to_string(height) + " pixels; draw fewer or smaller panels");
  Canvas canvas = white_canvas(width, height, "png_panels");
  cairo_t* cr = canvas.cr.p;
  cairo_set_source_rgb(cr, 0, 0, 0);
  for (size_t l = 0; l < lines.size(); ++l) {
    draw_text(cr, lines[l], kMargin, kTitleHeight - 10 + kTitleLine * int(l), kTitleSize,
              width - 2 * kMargin);
  }

  for (size_t i = 0; i < panels.size(); ++i) {
    const Panel& p = panels[i];
    const int x0 = kMargin + int(i % columns) * (cell_w + kMargin);
    const int y0 = title_height + int(i / columns) * (cell_h + kCaptionHeight + kMargin);
    // The panel's pixels into a surface of cairo's own layout (0x00RRGGBB words, its stride).
    Owned<cairo_surface_t, cairo_surface_destroy> img{
        cairo_image_surface_create(CAIRO_FORMAT_RGB24, p.image.width, p.image.height)};
    VIT_CHECK(cairo_surface_status(img.p) == CAIRO_STATUS_SUCCESS,
              "png_panels: cairo could not make a panel (out of memory?)");
    cairo_surface_flush(img.p);
    unsigned char* data = cairo_image_surface_get_data(img.p);
    const int stride = cairo_image_surface_get_stride(img.p);
    for (int y = 0; y < p.image.height; ++y) {
      auto* row = reinterpret_cast<uint32_t*>(data + int64_t(y) * stride);
      for (int x = 0; x < p.image.width; ++x) {
        const uint8_t* c = &p.image.rgb[(size_t(y) * p.image.width + x) * 3];
        row[x] = uint32_t(c[0]) << 16 | uint32_t(c[1]) << 8 | c[2];
      }
    }
    cairo_surface_mark_dirty(img.p);
    cairo_set_source_surface(cr, img.p, x0, y0);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    draw_text(cr, p.caption, x0, y0 + cell_h + kCaptionHeight - 7, kCaptionSize, cell_w);
  }
  VIT_CHECK(cairo_status(cr) == CAIRO_STATUS_SUCCESS,
            std::string("png_panels: cairo could not draw the picture: ") +
                cairo_status_to_string(cairo_status(cr)));
  return encode_png(canvas.surface.p, "png_panels");
}

#else

bool png_supported() {
  return false;
}

std::string png_panels(const std::vector<Panel>&, int, const std::string&) {
  throw Error(
      "this vit was built without cairo, which draws PNG pictures: install libcairo2-dev "
      "(scripts/setup-deps.sh does) and rebuild");
}

#endif  // VIT_HAVE_CAIRO

// librsvg draws onto cairo: the build defines VIT_HAVE_RSVG only with VIT_HAVE_CAIRO.
#ifdef VIT_HAVE_RSVG

bool svg_png_supported() {
  return true;
}

namespace {

void unref_handle(RsvgHandle* h) {
  g_object_unref(h);
}

// err's message (freed), for an error naming what failed.
std::string take_message(GError* err) {
  const std::string why = err ? err->message : "unknown error";
  if (err) g_error_free(err);
  return why;
}

}  // namespace

std::string svg_to_png(const std::string& svg) {
  GError* err = nullptr;
  RsvgHandle* handle =
      rsvg_handle_new_from_data(reinterpret_cast<const guint8*>(svg.data()), svg.size(), &err);
  if (!handle) throw Error("svg_to_png: librsvg cannot read the SVG: " + take_message(err));
  const Owned<RsvgHandle, unref_handle> owned{handle};
  gdouble w = 0, h = 0;
  VIT_CHECK(rsvg_handle_get_intrinsic_size_in_pixels(handle, &w, &h) && w >= 1 && h >= 1 &&
                w * h <= double(1 << 28),
            "svg_to_png: the SVG has no usable size in pixels");
  const int width = int(std::ceil(w)), height = int(std::ceil(h));
  Canvas canvas = white_canvas(width, height, "svg_to_png");
  const RsvgRectangle viewport{0, 0, double(width), double(height)};
  if (!rsvg_handle_render_document(handle, canvas.cr.p, &viewport, &err)) {
    throw Error("svg_to_png: librsvg could not draw the SVG: " + take_message(err));
  }
  return encode_png(canvas.surface.p, "svg_to_png");
}

#else

bool svg_png_supported() {
  return false;
}

std::string svg_to_png(const std::string&) {
  throw Error(
      "this vit was built without cairo and librsvg, which draw charts as PNG: install "
      "libcairo2-dev and librsvg2-dev (scripts/setup-deps.sh does) and rebuild, or write .svg");
}

#endif  // VIT_HAVE_RSVG

}  // namespace vit
