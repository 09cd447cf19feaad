// The dataset sources' open functions, for the table in src/data/dataset.cpp (one entry each).
#pragma once

#include <string>

#include "vit/dataset.hpp"

namespace vit::data {

// src/data/idx.cpp: the IDX sets.
DatasetSplits open_fashion_mnist(const std::string& arg, const DatasetOptions& options);
DatasetSplits open_mnist(const std::string& arg, const DatasetOptions& options);
DatasetSplits open_idx_dir(const std::string& dir, const DatasetOptions& options);

}  // namespace vit::data
