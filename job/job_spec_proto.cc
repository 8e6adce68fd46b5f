#include "job/job_spec_proto.h"

#include <algorithm>
#include <limits>

namespace caldera::job {

absl::StatusOr<JobSpec> JobSpecFromProto(const v1::JobSpec& p, const std::string& request_id) {
  JobSpec s;
  s.model = p.model();
  s.calibration = p.calibration();
  s.out = p.out();
  const v1::DecompositionSettings& d = p.decomposition();
  SettingNames names;
  names.method = d.method();
  names.quantizer = d.quantizer();
  names.incoherence = d.incoherence();
  names.ttlora_init = p.ttlora().init();
  names.calibration_mode = p.calibration_mode();
  names.hidden_dtype = p.hidden_dtype();
  names.serve = p.serve();
  if (absl::Status st = ApplySettingNames(names, &s); !st.ok()) return st;
  if (d.rank() != 0) s.rank = d.rank();
  if (d.q_bits() != 0) s.q_bits = d.q_bits();
  if (d.lr_bits() != 0) s.lr_bits = d.lr_bits();
  if (d.iters() != 0) s.iters = d.iters();
  if (d.lplr_iters() != 0) s.lplr_iters = d.lplr_iters();
  if (d.has_seed()) s.seed = d.seed();
  if (d.q_group_size() != 0) s.q_group_size = d.q_group_size();
  s.ttlora_rank = p.ttlora().rank();
  if (p.ttlora().alpha() != 0) s.ttlora_alpha = p.ttlora().alpha();
  s.modules.assign(p.modules().begin(), p.modules().end());
  if (p.calibration_shards() != 0) s.calibration_shards = p.calibration_shards();
  s.request_id = request_id;
  s.overwrite = p.overwrite();
  s.target_bits = p.target_bits();
  s.share_heads = p.share_heads();
  s.finetune_steps = p.finetune_steps();
  if (p.finetune_lr() != 0) s.finetune_lr = p.finetune_lr();
  if (p.finetune_holdout() != 0) s.finetune_holdout = p.finetune_holdout();
  return s;
}

v1::JobSpec JobSpecToProto(const JobSpec& s) {
  v1::JobSpec p;
  p.set_model(s.model);
  p.set_calibration(s.calibration);
  p.set_out(s.out);
  v1::DecompositionSettings* d = p.mutable_decomposition();
  d->set_method(std::string(decompose::MethodName(s.method)));
  d->set_rank(s.rank);
  d->set_q_bits(s.q_bits);
  d->set_lr_bits(s.lr_bits);
  d->set_quantizer(std::string(quant::QuantizerName(s.quantizer)));
  d->set_iters(s.iters);
  d->set_lplr_iters(s.lplr_iters);
  d->set_seed(s.seed);
  d->set_q_group_size(static_cast<int32_t>(
      std::clamp<int64_t>(s.q_group_size, 0, std::numeric_limits<int32_t>::max())));
  d->set_incoherence(std::string(IncoherenceName(s.incoherence)));
  p.mutable_ttlora()->set_rank(s.ttlora_rank);
  p.mutable_ttlora()->set_init(std::string(ttlora::InitModeName(s.ttlora_init)));
  p.mutable_ttlora()->set_alpha(s.ttlora_alpha);
  for (const std::string& m : s.modules) p.add_modules(m);
  p.set_calibration_mode(std::string(CalibrationModeName(s.calibration_mode)));
  p.set_overwrite(s.overwrite);
  p.set_calibration_shards(s.calibration_shards);
  p.set_target_bits(s.target_bits);
  p.set_share_heads(s.share_heads);
  p.set_hidden_dtype(std::string(HiddenDTypeName(s.hidden_dtype)));
  if (s.serve != Serve::kNone) p.set_serve(std::string(ServeName(s.serve)));
  if (s.finetune_steps != 0) {
    p.set_finetune_steps(s.finetune_steps);
    p.set_finetune_lr(s.finetune_lr);
    p.set_finetune_holdout(s.finetune_holdout);
  }
  return p;
}

}  // namespace caldera::job
