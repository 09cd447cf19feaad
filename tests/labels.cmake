# ctest labels for the GoogleTest suite, by test suite name (the part before the first '.'; for a
# parameterised test, after the instantiation's '/'). ctest includes this file after the tests
# gtest_discover_tests found (listed in vit_tests_TESTS), so a new test is labelled by its suite
# without an edit here. The labels (docs/CONVENTIONS.md "Tests", README "How it is tested"):
#   unit         every test not named below: ops, model, data, training, threads, safetensors
#   cli          Cli.*: the `vit` tool end to end (runs the binary)
#   reliability  Reliability.*: fault injection (SIGKILL, signals, full disk, lying files)
#   mpi          Mpi.*: `mpirun -np N vit train` end to end (skipped without MPI)
#   slow         over a minute in a sanitizer build: left out of `make test-sanitize` in CI
# fuzz-corpus (FuzzCorpus.*, fuzz/CMakeLists.txt), isa-symbols (IsaVariants.*) and install
# (Install.*: make install and find_package, tests/CMakeLists.txt) are set where those tests are
# added.
set(vit_slow_tests Reliability.SigkillAtRandomMomentsLosesNothing)
foreach(test IN LISTS vit_tests_TESTS)
  string(REGEX REPLACE "^([^/]*/)?([^.]*)\\..*$" "\\2" suite "${test}")
  if(suite STREQUAL "Cli")
    set(labels cli)
  elseif(suite STREQUAL "Mpi")
    set(labels mpi)
  elseif(suite STREQUAL "Reliability")
    set(labels reliability)
  else()
    set(labels unit)
  endif()
  list(FIND vit_slow_tests "${test}" slow)  # not IN_LIST: ctest reads this without policies set
  if(slow GREATER -1)
    list(APPEND labels slow)
  endif()
  set_tests_properties("${test}" PROPERTIES LABELS "${labels}")
endforeach()
