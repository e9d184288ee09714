#include "journal/in_place_work.h"

#include "base/encoding.h"

namespace nosyncfs {
namespace {

constexpr uint8_t kZeroOp = 1;

}  // namespace

std::string InPlaceWork::Encode() const {
  std::string out;
  PutFixed32(&out, static_cast<uint32_t>(zero.size()));
  for (const Range& r : zero) {
    out.push_back(static_cast<char>(kZeroOp));
    PutFixed64(&out, r.dev);
    PutFixed64(&out, r.len);
  }
  return out;
}

Result<InPlaceWork> InPlaceWork::Decode(std::string_view value) {
  Decoder d(value);
  uint32_t count = 0;
  if (!d.GetFixed32(&count)) return Status::Error(EUCLEAN, "intent: truncated header");
  InPlaceWork w;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t op = 0;
    Range r;
    if (!(d.GetRaw(&op, 1) && d.GetFixed64(&r.dev) && d.GetFixed64(&r.len))) {
      return Status::Error(EUCLEAN, "intent: truncated range");
    }
    if (op != kZeroOp) return Status::Error(EUCLEAN, "intent: unknown operation");
    w.zero.push_back(r);
  }
  if (!d.done()) return Status::Error(EUCLEAN, "intent: trailing bytes");
  return w;
}

}  // namespace nosyncfs
