#include "monitor/event_log.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

namespace warden::monitor {

nlohmann::json eventRecordToJson(const store::EventRecord& r) {
  nlohmann::json j = nlohmann::json::object();
  j["id"] = r.id;
  j["time"] = core::formatRfc3339(core::fromUnixSeconds(r.time));
  j["type"] = r.type;
  j["principal"] = r.principal;
  j["actor"] = r.actor;
  j["action"] = r.action;
  j["resource"] = r.resource;
  j["decision"] = r.decision;
  j["rule"] = r.rule;
  j["reason"] = r.reason;
  if (r.detail.is_object() && !r.detail.empty()) j["detail"] = r.detail;
  return j;
}

EventLog::EventLog(store::Store& store, const core::Clock& clock, EventLogOptions options)
    : store_(store), clock_(clock), options_(options) {
  writer_ = std::thread([this] { writerLoop(); });
}

EventLog::~EventLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void EventLog::record(Event event) {
  const int64_t now = core::unixSeconds(clock_.now());
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queue) {
      ++dropped_pending_;
      ++dropped_total_;
      return;
    }
    queue_.push_back(QueuedEvent{std::move(event), now});
    ++enqueued_seq_;
  }
  work_cv_.notify_one();
}

void EventLog::flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = enqueued_seq_;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_seq_ >= target; });
}

uint64_t EventLog::subscribe(EventSubscriber subscriber) {
  std::lock_guard lock(subscribers_mu_);
  uint64_t id = next_subscriber_id_++;
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void EventLog::unsubscribe(uint64_t id) {
  // Taking subscribers_mu_ waits for a running callback on the writer thread;
  // it is recursive so a callback may unsubscribe itself.
  std::lock_guard lock(subscribers_mu_);
  subscribers_.erase(id);
}

uint64_t EventLog::droppedTotal() const {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

void EventLog::writerLoop() {
  maybePrune();  // once at start-up, then at most every prune_interval
  std::vector<QueuedEvent> batch;
  while (true) {
    uint64_t dropped = 0;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait_for(lock, std::chrono::seconds(60),
                        [&] { return stopping_ || !queue_.empty() || dropped_pending_ > 0; });
      if (queue_.empty() && dropped_pending_ == 0) {
        if (stopping_) return;
        lock.unlock();
        maybePrune();
        continue;
      }
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.clear();
      batch.reserve(n + 1);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      dropped = dropped_pending_;
      dropped_pending_ = 0;
    }
    const size_t handled = batch.size();
    if (dropped > 0) {
      Event e;
      e.type = std::string(event_type::kEventsDropped);
      e.actor = "system";
      e.reason = std::string(reason::kQueueFull);
      e.detail = {{"count", dropped}};
      batch.push_back(QueuedEvent{std::move(e), core::unixSeconds(clock_.now())});
    }
    writeBatch(batch);
    maybePrune();
    {
      std::lock_guard lock(mu_);
      committed_seq_ += handled;
    }
    done_cv_.notify_all();
  }
}

void EventLog::writeBatch(std::vector<QueuedEvent>& batch) {
  std::vector<store::EventRecord> records;
  records.reserve(batch.size());
  for (QueuedEvent& q : batch) {
    Event& e = q.event;
    store::EventRecord r;
    r.time = q.time;
    r.type = std::move(e.type);
    r.principal = std::move(e.principal);
    r.actor = std::move(e.actor);
    r.action = std::move(e.action);
    r.resource = std::move(e.resource);
    r.decision = std::move(e.decision);
    r.rule = std::move(e.rule);
    r.reason = std::move(e.reason);
    r.detail = std::move(e.detail);
    records.push_back(std::move(r));
  }
  auto stored = store_.appendEvents(std::move(records));
  if (!stored.isOk()) {
    spdlog::error("event log: {} events could not be stored: {}", batch.size(), stored.status().toString());
    return;
  }
  std::lock_guard lock(subscribers_mu_);
  // Iterate by id so that a callback may unsubscribe (itself or others).
  auto it = subscribers_.begin();
  while (it != subscribers_.end()) {
    const uint64_t id = it->first;
    EventSubscriber cb = it->second;  // a copy: the callback may erase its entry
    cb(*stored);
    it = subscribers_.upper_bound(id);
  }
}

void EventLog::maybePrune() {
  const auto now_steady = clock_.steadyNow();
  const int64_t now = core::unixSeconds(clock_.now());
  if (next_prune_ != std::chrono::steady_clock::time_point{} && now_steady < next_prune_) return;
  next_prune_ = now_steady + options_.prune_interval;
  if (next_prune_ == std::chrono::steady_clock::time_point{}) next_prune_ += std::chrono::nanoseconds(1);
  auto pruned = store_.pruneEvents(now - options_.retention.count());
  if (!pruned.isOk()) {
    spdlog::warn("event log: pruning events older than {}s failed: {}", options_.retention.count(),
                 pruned.status().toString());
  } else if (*pruned > 0) {
    spdlog::info("event log: pruned {} events older than the retention of {}s", *pruned,
                 options_.retention.count());
  }
}

}  // namespace warden::monitor
