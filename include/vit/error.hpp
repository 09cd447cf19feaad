// vit::Error: the one exception type the library throws (EveryRankError and Stopped are kinds of
// it). Its message says what was wrong and what to do about it; the CLI prints it and exits
// non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace vit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An Error that every rank of a distributed run throws together, at the same point of the run
// (the ranks agreed on it, or reached it from the same numbers): each can report it and end
// normally, where an error of one rank alone must end the others (MPI_Abort). One process: an
// Error like any other.
class EveryRankError : public Error {
 public:
  using Error::Error;
};

// Long work given up because its caller asked it to stop (DatasetOptions::stop: a signal arrived
// while a folder's images were decoded); nothing half made is kept.
class Stopped : public Error {
 public:
  using Error::Error;
};

// Throws vit::Error(message) when cond is false. A macro so that the message (usually built from
// strings) is only evaluated on failure: checks cost nothing on hot paths and never allocate.
#define VIT_CHECK(cond, message)              \
  do {                                        \
    if (!(cond)) throw ::vit::Error(message); \
  } while (0)

}  // namespace vit
