// Fuzz target: a Hugging Face tokenizer.json; when it parses, it also encodes
// a fixed mixed text and decodes the ids.
#include "core/tokenizer/bpe_tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tok = caldera::tokenizer::BpeTokenizer::FromJson(caldera::fuzz::Text(data, size), "",
                                                        "fuzz/tokenizer.json");
  if (!tok.ok()) return 0;
  const std::vector<int32_t> ids =
      (*tok)->Encode("Hello  world!\n\t<s> 123 h\xC3\xA9llo \xF0\x9F\x99\x82 \xFF", true);
  (void)(*tok)->Decode(ids);
  return 0;
}
