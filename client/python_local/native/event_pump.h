// Runs an operation on its own thread with the GIL released while the calling
// (Python) thread delivers the operation's progress events and notes to
// Python callbacks and checks for signals, so a callback always runs on the
// thread that called compress()/eval()/... (what tqdm and notebooks expect)
// and Ctrl-C is seen within a tenth of a second.
#ifndef CALDERA_CLIENT_PYTHON_LOCAL_NATIVE_EVENT_PUMP_H_
#define CALDERA_CLIENT_PYTHON_LOCAL_NATIVE_EVENT_PUMP_H_

#include <pybind11/pybind11.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "operations/listener.h"

namespace caldera::python_local {

class EventPump {
 public:
  // `progress(done, total, message)` and `note(text)`: Python callables or None.
  EventPump(pybind11::object progress, pybind11::object note)
      : progress_(std::move(progress)), note_(std::move(note)) {
    listener_.progress = [this](int64_t done, int64_t total, const std::string& message) {
      Push(Event{false, done, total, message});
    };
    listener_.note = [this](const std::string& text) { Push(Event{true, 0, 0, text}); };
  }
  EventPump(const EventPump&) = delete;
  EventPump& operator=(const EventPump&) = delete;

  // The listener to hand to the operation (valid while the pump lives).
  const operations::Listener& listener() const { return listener_; }

  // Runs `work` on a new thread and pumps events until it returns. Called
  // with the GIL held. A signal (KeyboardInterrupt) calls `on_interrupt`
  // once (may be empty) and keeps waiting for `work` to end; the Python error
  // stays set and interrupted() is true. A callback that raises stops the
  // delivery of further events (the error stays set, `on_interrupt` is
  // called); `work` still runs to its end.
  void Run(const std::function<void()>& work, std::function<void()> on_interrupt) {
    on_interrupt_ = std::move(on_interrupt);
    std::thread worker([&] {
      work();
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      cv_.notify_all();
    });
    bool finished = false;
    while (!finished) {
      std::deque<Event> events;
      {
        pybind11::gil_scoped_release unlocked;  // other Python threads run meanwhile
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(100),
                     [&] { return finished_ || !events_.empty(); });
        events.swap(events_);
        finished = finished_;
      }
      Deliver(events);
      if (!python_error_ && PyErr_CheckSignals() != 0) Interrupted();
    }
    {
      pybind11::gil_scoped_release release;
      worker.join();
    }
    std::deque<Event> rest;
    rest.swap(events_);
    Deliver(rest);
  }

  // True when a signal or a callback raised: the Python error is set, and
  // the caller must throw pybind11::error_already_set.
  bool interrupted() const { return python_error_; }

 private:
  struct Event {
    bool note;
    int64_t done, total;
    std::string text;
  };

  void Interrupted() {
    python_error_ = true;
    if (on_interrupt_) on_interrupt_();
  }

  void Push(Event e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }

  void Deliver(const std::deque<Event>& events) {
    for (const Event& e : events) {
      if (python_error_) return;
      const pybind11::object& callback = e.note ? note_ : progress_;
      if (callback.is_none()) continue;
      // Messages may quote bytes that are not UTF-8 (paths): replaced, never an error.
      PyObject* text =
          PyUnicode_DecodeUTF8(e.text.data(), static_cast<Py_ssize_t>(e.text.size()), "replace");
      PyObject* result = nullptr;
      if (text != nullptr && e.note) {
        result = PyObject_CallFunctionObjArgs(callback.ptr(), text, nullptr);
      } else if (text != nullptr) {
        result = PyObject_CallFunction(callback.ptr(), "LLO", static_cast<long long>(e.done),
                                       static_cast<long long>(e.total), text);
      }
      Py_XDECREF(text);
      if (result == nullptr) {
        Interrupted();
        return;
      }
      Py_DECREF(result);
    }
  }

  pybind11::object progress_, note_;
  operations::Listener listener_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;            // guarded by mu_
  bool finished_ = false;               // guarded by mu_
  bool python_error_ = false;           // the calling thread's only
  std::function<void()> on_interrupt_;  // the calling thread's only
};

}  // namespace caldera::python_local

#endif  // CALDERA_CLIENT_PYTHON_LOCAL_NATIVE_EVENT_PUMP_H_
