// caldera_local._native: the pybind11 edge over operations/ (compress, eval,
// export, tokenize, decode). Options come in as a dict built by the Python
// layer (caldera_local/api.py, which owns the keyword arguments and their
// documentation); results go out as dicts that it turns into dataclasses. An
// absl::Status error becomes the exception caldera_local.errors.from_status
// makes for its code; the GIL is released while an operation runs
// (event_pump.h), and Ctrl-C cancels a compress job.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "client/python_local/native/event_pump.h"
#include "core/backend/backend.h"
#include "core/format/checkpoint_report.h"
#include "job/job_spec.h"
#include "operations/compress.h"
#include "operations/device.h"
#include "operations/eval.h"
#include "operations/export.h"
#include "operations/tokenize.h"
#include "storage/storage_options.h"

namespace py = pybind11;

namespace caldera::python_local {
namespace {

// A non-OK status on its way to Python (translated in PYBIND11_MODULE).
struct StatusError {
  absl::Status status;
};

template <typename T>
T Check(absl::StatusOr<T> v) {
  if (!v.ok()) throw StatusError{v.status()};
  return *std::move(v);
}

void Check(const absl::Status& s) {
  if (!s.ok()) throw StatusError{s};
}

// Runs `op(listener)`, which returns an absl::StatusOr, on its own thread
// through an EventPump (event_pump.h) and returns its value; a Python error
// (Ctrl-C, a raising callback) or the status is thrown. `on_interrupt` as for
// EventPump::Run.
template <typename Op>
auto Pumped(py::object progress, py::object note, Op op,
            std::function<void()> on_interrupt = nullptr) {
  EventPump pump(std::move(progress), std::move(note));
  std::optional<decltype(op(pump.listener()))> result;
  pump.Run([&] { result = op(pump.listener()); }, std::move(on_interrupt));
  if (pump.interrupted()) throw py::error_already_set();
  return Check(*std::move(result));
}

// Sets *out from options[key] when present and not None.
template <typename T>
void Get(const py::dict& options, const char* key, T* out) {
  if (options.contains(key) && !options[key].is_none()) *out = options[key].cast<T>();
}

job::JobSpec SpecFrom(const py::dict& o) {
  job::JobSpec spec;
  job::SettingNames names;
  Get(o, "model", &spec.model);
  Get(o, "calibration", &spec.calibration);
  Get(o, "out", &spec.out);
  Get(o, "method", &names.method);
  Get(o, "quantizer", &names.quantizer);
  Get(o, "incoherence", &names.incoherence);
  Get(o, "ttlora_init", &names.ttlora_init);
  Get(o, "calibration_mode", &names.calibration_mode);
  Get(o, "hidden_dtype", &names.hidden_dtype);
  Get(o, "serve", &names.serve);
  if (names.serve == "vllm") {  // the served defaults, as calderactl's --serve vllm
    if (names.quantizer.empty()) names.quantizer = "int";
    spec.q_bits = 4;
    spec.lr_bits = 16;
  }
  if (names.serve == "llamacpp") {  // as calderactl's --serve llamacpp: GGUF's Q4_0 by LDLQ
    if (names.quantizer.empty()) names.quantizer = "int";
    if (names.method.empty()) names.method = "ldlq";
    spec.q_bits = 4;
    spec.q_group_size = 32;
  }
  Get(o, "rank", &spec.rank);
  Get(o, "q_bits", &spec.q_bits);
  Get(o, "lr_bits", &spec.lr_bits);
  Get(o, "q_group_size", &spec.q_group_size);
  Get(o, "iters", &spec.iters);
  Get(o, "lplr_iters", &spec.lplr_iters);
  Get(o, "seed", &spec.seed);
  Get(o, "ttlora_rank", &spec.ttlora_rank);
  Get(o, "ttlora_alpha", &spec.ttlora_alpha);
  Get(o, "modules", &spec.modules);
  Get(o, "calibration_shards", &spec.calibration_shards);
  Get(o, "share_heads", &spec.share_heads);
  Get(o, "target_bits", &spec.target_bits);
  Get(o, "finetune_steps", &spec.finetune_steps);
  Get(o, "finetune_lr", &spec.finetune_lr);
  Get(o, "finetune_holdout", &spec.finetune_holdout);
  Get(o, "overwrite", &spec.overwrite);
  Get(o, "request_id", &spec.request_id);
  Check(job::ApplySettingNames(names, &spec));
  return spec;
}

py::dict Compress(const py::dict& o, py::object progress, py::object note) {
  operations::CompressOptions options;
  options.spec = SpecFrom(o);
  Get(o, "calibration_text", &options.calibration_text.text);
  Get(o, "calibration_seq_len", &options.calibration_text.seq_len);
  Get(o, "calibration_samples", &options.calibration_text.samples);
  Get(o, "calibration_seed", &options.calibration_text.seed);
  Get(o, "workers", &options.workers);
  Get(o, "threads", &options.threads);
  std::string device = "cpu", device_note;
  Get(o, "device", &device);
  std::unique_ptr<backend::ComputeBackend> compute =
      Check(operations::OpenComputeDevice(device, &device_note));
  if (!device_note.empty() && !note.is_none()) note(device_note);
  options.device = compute.get();

  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  operations::CompressCancel cancel;
  operations::CompressResult r = Pumped(
      std::move(progress), std::move(note),
      [&](const operations::Listener& l) {
        return operations::Compress(std::move(options), storage, l, &cancel);
      },
      [&] { cancel.Cancel(); });
  py::dict d;
  d["job"] = r.job.name();
  d["state"] = v1::JobState_Name(r.job.state());
  d["error"] = r.job.error();
  d["out"] = r.job.spec().out();
  d["calibration"] = r.job.spec().calibration();
  d["seconds"] = r.seconds;
  d["report"] = r.report.has_value()
                    ? py::object(py::str(format::SerializeCheckpointReport(*r.report)))
                    : py::object(py::none());
  return d;
}

py::dict EvalResultDict(const model::EvalResult& r) {
  py::dict d;
  d["perplexity"] = r.perplexity;
  d["mean_nll"] = r.mean_nll;
  d["tokens"] = r.predictions;
  return d;
}

py::dict Eval(const py::dict& o, py::object progress, py::object note) {
  operations::EvalOptions options;
  Get(o, "model", &options.model);
  Get(o, "tokens", &options.tokens);
  Get(o, "text", &options.text);
  Get(o, "baseline", &options.baseline);
  Get(o, "seq_len", &options.seq_len);
  Get(o, "samples", &options.samples);
  Get(o, "batch", &options.batch);
  Get(o, "share_heads", &options.share_heads);
  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  operations::EvalResult r =
      Pumped(std::move(progress), std::move(note),
             [&](const operations::Listener& l) { return operations::Eval(options, storage, l); });
  py::dict d = EvalResultDict(r.model);
  d["windows"] = r.windows;
  d["seq_len"] = r.seq_len;
  d["shared_head_groups"] = r.shared_head_groups;
  d["baseline"] =
      r.baseline.has_value() ? py::object(EvalResultDict(*r.baseline)) : py::object(py::none());
  return d;
}

py::dict Export(const py::dict& o, py::object progress, py::object note) {
  operations::ExportOptions options;
  Get(o, "format", &options.format);
  Get(o, "model", &options.model);
  Get(o, "out", &options.out);
  Get(o, "dtype", &options.dtype);
  Get(o, "ft_rank", &options.ft_rank);
  Get(o, "dense_fallback", &options.dense_fallback);
  Get(o, "merge_lr", &options.merge_lr);
  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  operations::ExportResult r = Pumped(
      std::move(progress), std::move(note),
      [&](const operations::Listener& l) { return operations::Export(options, storage, l); });
  py::dict d;
  d["model"] = r.model;
  d["adapter"] = r.adapter.empty() ? py::object(py::none()) : py::object(py::str(r.adapter));
  return d;
}

py::dict Tokenize(const py::dict& o) {
  operations::TokenizeOptions options;
  Get(o, "tokenizer", &options.tokenizer);
  Get(o, "text", &options.text);
  Get(o, "out", &options.out);
  Get(o, "field", &options.field);
  Get(o, "seq_len", &options.seq_len);
  Get(o, "samples", &options.samples);
  Get(o, "seed", &options.seed);
  Get(o, "no_bos", &options.no_bos);
  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  operations::TokenizeResult r = Pumped(py::none(), py::none(), [&](const operations::Listener&) {
    return operations::Tokenize(options, storage);
  });
  py::dict d;
  d["tokens"] = r.tokens;
  d["samples"] = r.samples;
  d["seq_len"] = r.seq_len;
  d["tokenizer_file"] = r.tokenizer_file;
  d["out"] = r.out;
  return d;
}

py::str PrepareCalibration(const py::dict& o, py::object note) {
  job::JobSpec spec;
  Get(o, "model", &spec.model);
  Get(o, "calibration", &spec.calibration);
  Get(o, "out", &spec.out);
  operations::CalibrationText text;
  Get(o, "calibration_text", &text.text);
  Get(o, "calibration_seq_len", &text.seq_len);
  Get(o, "calibration_samples", &text.samples);
  Get(o, "calibration_seed", &text.seed);
  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  return py::str(Pumped(py::none(), std::move(note), [&](const operations::Listener& l) {
    absl::Status s = operations::ResolveCalibrationText(text, &spec, storage, l);
    return s.ok() ? absl::StatusOr<std::string>(spec.calibration) : absl::StatusOr<std::string>(s);
  }));
}

py::str Decode(const std::string& tokenizer, const std::string& tokens) {
  const storage::StorageOptions storage = storage::StorageOptions::FromEnvironment();
  return py::str(Pumped(py::none(), py::none(), [&](const operations::Listener&) {
    return operations::DecodeTokenFile(tokenizer, tokens, storage);
  }));
}

}  // namespace
}  // namespace caldera::python_local

PYBIND11_MODULE(_native, m) {
  namespace pl = caldera::python_local;
  m.doc() = "caldera_local's C++ edge (operations/); use the functions of caldera_local.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pl::StatusError& e) {
      py::object errors = py::module_::import("caldera_local.errors");
      py::object exc = errors.attr("from_status")(static_cast<int>(e.status.code()),
                                                  std::string(e.status.message()));
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
  m.def("compress", &pl::Compress, py::arg("options"), py::arg("progress"), py::arg("note"));
  m.def("eval", &pl::Eval, py::arg("options"), py::arg("progress"), py::arg("note"));
  m.def("export", &pl::Export, py::arg("options"), py::arg("progress"), py::arg("note"));
  m.def("tokenize", &pl::Tokenize, py::arg("options"));
  m.def("prepare_calibration", &pl::PrepareCalibration, py::arg("options"), py::arg("note"));
  m.def("decode", &pl::Decode, py::arg("tokenizer"), py::arg("tokens"));
}
