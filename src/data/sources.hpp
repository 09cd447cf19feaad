// The dataset sources' open functions, for the table in src/data/dataset.cpp (one entry each).
#pragma once

#include <string>

#include "vit/dataset.hpp"

namespace vit::data {

// For sources whose classes are their own (named folders, CIFAR's label sets): vit::Error unless
// the model has exactly `classes` of them, saying what to set (src/data/dataset.cpp).
void require_classes(const std::string& spec, int classes, const DatasetOptions& options);

// src/data/idx.cpp: the IDX sets.
DatasetSplits open_fashion_mnist(const std::string& arg, const DatasetOptions& options);
DatasetSplits open_mnist(const std::string& arg, const DatasetOptions& options);
DatasetSplits open_idx_dir(const std::string& dir, const DatasetOptions& options);

// src/data/cifar.cpp: the CIFAR binary versions.
DatasetSplits open_cifar10(const std::string& dir, const DatasetOptions& options);
DatasetSplits open_cifar100_fine(const std::string& dir, const DatasetOptions& options);
DatasetSplits open_cifar100_coarse(const std::string& dir, const DatasetOptions& options);

// src/data/folder.cpp: image folders; folder_classes counts DIR/train's class folders (0 when
// there is no DIR/train).
DatasetSplits open_folder(const std::string& dir, const DatasetOptions& options);
int folder_classes(const std::string& dir, const std::string& data_dir);

}  // namespace vit::data
