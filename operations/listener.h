// How a long operation of this folder talks to its caller while it runs:
// progress steps and notes (lines worth showing, e.g. where a calibration
// token file was written). calderactl prints them; the Python package
// (client/python_local) hands them to a callback or a tqdm bar.
#ifndef CALDERA_OPERATIONS_LISTENER_H_
#define CALDERA_OPERATIONS_LISTENER_H_

#include <cstdint>
#include <functional>
#include <string>

namespace caldera::operations {

struct Listener {
  // `done` of `total` steps; `message` names the step just finished. Called
  // from the operation's threads, one call at a time. May be empty.
  std::function<void(int64_t done, int64_t total, const std::string& message)> progress;
  // A line for the user. May be empty.
  std::function<void(const std::string& text)> note;

  void Progress(int64_t done, int64_t total, const std::string& message) const {
    if (progress) progress(done, total, message);
  }
  void Note(const std::string& text) const {
    if (note) note(text);
  }
};

}  // namespace caldera::operations

#endif  // CALDERA_OPERATIONS_LISTENER_H_
