#include "journal/meta_batch.h"

#include "base/encoding.h"

namespace nosyncfs {

std::string MetaBatch::Encode() const {
  std::string out;
  PutFixed32(&out, static_cast<uint32_t>(ops_.size()));
  for (const Op& op : ops_) {
    out.push_back(static_cast<char>(op.type));
    PutBytes(&out, op.key);
    if (op.type == OpType::kPut) PutBytes(&out, op.value);
  }
  return out;
}

Result<MetaBatch> MetaBatch::Decode(std::string_view data) {
  Decoder d(data);
  uint32_t count;
  if (!d.GetFixed32(&count)) return Status::Error(EUCLEAN, "batch: truncated header");
  MetaBatch batch;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t type;
    std::string key, value;
    if (!d.GetRaw(&type, 1) || !d.GetBytes(&key)) {
      return Status::Error(EUCLEAN, "batch: truncated operation");
    }
    if (type == static_cast<uint8_t>(OpType::kPut)) {
      if (!d.GetBytes(&value)) return Status::Error(EUCLEAN, "batch: truncated value");
      batch.Put(std::move(key), std::move(value));
    } else if (type == static_cast<uint8_t>(OpType::kDelete)) {
      batch.Delete(std::move(key));
    } else {
      return Status::Error(EUCLEAN, "batch: unknown operation type");
    }
  }
  if (!d.done()) return Status::Error(EUCLEAN, "batch: trailing bytes");
  return batch;
}

}  // namespace nosyncfs
