// Everything about data in one include: datasets and their sources (vit/dataset.hpp), decoded
// images (vit/image.hpp), normalisation (vit/normalization.hpp) and preprocessing
// (vit/transforms.hpp). Include the one you need where that is enough.
#pragma once

#include "vit/dataset.hpp"
#include "vit/image.hpp"
#include "vit/normalization.hpp"
#include "vit/transforms.hpp"
