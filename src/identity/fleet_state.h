#pragma once

// fleet_state.h: the immutable principal state read by the hot path (TLS
// verification, CONNECT, every packet). Built by Registry::loadFleetState and
// swapped atomically inside the gateway's DecisionSnapshot; never mutated
// after construction, so readers never lock.

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/names.h"
#include "store/store.h"

namespace warden::identity {

struct DeviceEntry {
  std::string name, role;
  core::Labels labels;
  store::DeviceState state = store::DeviceState::kPending;
  // valid_serials holds the serials (lowercase hex) issued to this device
  // that were neither revoked nor expired when the state was loaded.
  std::unordered_set<std::string> valid_serials;
  // Posture (issue 6), what the policy's principal.* posture attributes
  // read. Absent (nullopt / "" / 0) when nothing is known.
  std::optional<int> trust = std::nullopt;  // 0-100
  std::optional<bool> firmware_approved = std::nullopt;
  std::string attestation_assurance = {};   // of the last good attestation: "", "software", "tpm"
  int64_t last_good_attestation = 0;        // unix seconds, 0 = never
  // revision is the FleetState generation that last (re)loaded this entry:
  // a session whose entry kept its revision under the same policy keeps its
  // cached decisions.
  uint64_t revision = 0;
};

// DeviceTable maps device names to entries, split into kShards hash shards
// held by shared_ptr, grouped in kBlocks blocks also held by shared_ptr.
// Copying a table copies kBlocks block pointers, not entries, and writing
// through a copy clones only the block and the shard it touches: a snapshot
// for a change to one device costs O(kBlocks + kShardsPerBlock + fleet /
// kShards), not O(fleet), and every snapshot still reads like an
// unordered_map. Writers (operator[], emplace, erase) are for building a
// table before it is published; a published FleetState is const.
class DeviceTable {
 public:
  static constexpr size_t kBlocks = 64;
  static constexpr size_t kShardsPerBlock = 64;
  static constexpr size_t kShards = kBlocks * kShardsPerBlock;
  using Shard = std::unordered_map<std::string, DeviceEntry>;
  using value_type = Shard::value_type;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = DeviceTable::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    const_iterator() = default;
    reference operator*() const { return *it_; }
    pointer operator->() const { return &*it_; }
    const_iterator& operator++() {
      ++it_;
      settle();
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return shard_ == o.shard_ && (shard_ == kShards || it_ == o.it_); }

   private:
    friend class DeviceTable;
    const_iterator(const DeviceTable* table, size_t shard, Shard::const_iterator it)
        : table_(table), shard_(shard), it_(it) {}
    // settle moves past the end of empty or finished shards.
    void settle() {
      while (shard_ < kShards && (table_->shard(shard_) == nullptr || it_ == table_->shard(shard_)->end())) {
        if (++shard_ < kShards && table_->shard(shard_) != nullptr) it_ = table_->shard(shard_)->begin();
      }
    }
    const DeviceTable* table_ = nullptr;
    size_t shard_ = kShards;
    Shard::const_iterator it_{};
  };

  const_iterator begin() const {
    const_iterator it(this, 0, shard(0) != nullptr ? shard(0)->begin() : Shard::const_iterator{});
    it.settle();
    return it;
  }
  const_iterator end() const { return const_iterator(this, kShards, {}); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator find(const std::string& name) const {
    const size_t s = shardOf(name);
    const Shard* sh = shard(s);
    if (sh == nullptr) return end();
    auto it = sh->find(name);
    return it == sh->end() ? end() : const_iterator(this, s, it);
  }
  size_t count(const std::string& name) const { return find(name) == end() ? 0 : 1; }

  // operator[] returns |name|'s entry for writing, inserting an empty one.
  DeviceEntry& operator[](const std::string& name) {
    Shard& shard = writable(shardOf(name));
    auto [it, inserted] = shard.try_emplace(name);
    if (inserted) ++size_;
    return it->second;
  }
  // emplace inserts or replaces |name|'s entry.
  void emplace(const std::string& name, DeviceEntry entry) { (*this)[name] = std::move(entry); }
  // erase removes |name|; false if it was not there.
  bool erase(const std::string& name) {
    const size_t s = shardOf(name);
    const Shard* sh = shard(s);
    if (sh == nullptr || sh->count(name) == 0) return false;
    writable(s).erase(name);
    --size_;
    return true;
  }

 private:
  using Block = std::array<std::shared_ptr<Shard>, kShardsPerBlock>;

  static size_t shardOf(const std::string& name) { return std::hash<std::string>{}(name) % kShards; }
  const Shard* shard(size_t s) const {
    const auto& block = blocks_[s / kShardsPerBlock];
    return block ? (*block)[s % kShardsPerBlock].get() : nullptr;
  }
  // writable returns shard |s| for writing, cloning first whatever another
  // table shares (copy on write: other tables keep theirs).
  Shard& writable(size_t s) {
    auto& block = blocks_[s / kShardsPerBlock];
    if (!block) {
      block = std::make_shared<Block>();
    } else if (block.use_count() > 1) {
      block = std::make_shared<Block>(*block);
    }
    auto& sh = (*block)[s % kShardsPerBlock];
    if (!sh) {
      sh = std::make_shared<Shard>();
    } else if (sh.use_count() > 1) {
      sh = std::make_shared<Shard>(*sh);
    }
    return *sh;
  }

  std::array<std::shared_ptr<Block>, kBlocks> blocks_{};
  size_t size_ = 0;
};

// ChangeScope says what a committed change touched, so that the decision
// snapshot and the live sessions are brought up to date only there: some
// devices (enrollment, renewal, revocation, quarantine of one device), or
// everything (policy, operators, CAs, anything else).
struct ChangeScope {
  bool everything = true;
  std::vector<std::string> devices;  // when !everything

  static ChangeScope all() { return {}; }
  static ChangeScope device(std::string name) { return ChangeScope{false, {std::move(name)}}; }
};

struct FleetState {
  uint64_t generation = 0;  // strictly increasing per Registry
  DeviceTable devices;
  // user_serials maps each valid user certificate serial to the user name
  // (the operator: "admin").
  std::unordered_map<std::string, std::string> user_serials;

  // findDevice returns the entry for |name| or nullptr.
  const DeviceEntry* findDevice(const std::string& name) const {
    auto it = devices.find(name);
    return it == devices.end() ? nullptr : &it->second;
  }
  // deviceHoldsSerial reports whether |serial_hex| is a valid serial of
  // device |name| (its state is not checked here).
  bool deviceHoldsSerial(const std::string& name, const std::string& serial_hex) const {
    const DeviceEntry* e = findDevice(name);
    return e != nullptr && e->valid_serials.count(serial_hex) != 0;
  }
  // userForSerial returns the user name holding |serial_hex|, or nullptr.
  const std::string* userForSerial(const std::string& serial_hex) const {
    auto it = user_serials.find(serial_hex);
    return it == user_serials.end() ? nullptr : &it->second;
  }
};

}  // namespace warden::identity
