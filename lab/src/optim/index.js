// The browser twin of sampy.optim: every class the 2-D laboratory runs, by the reference's
// class names. `TWINS` is what the registry builds variants from; a test checks that it holds
// exactly the registry rows that are not Python-only (sampy.lab_metadata.PYTHON_ONLY).

import { Adam, AdamW } from "./adam.js";
import { Oracle } from "./base.js";
import { SAM } from "./sam.js";
import { SGD } from "./sgd.js";
import { SharpnessAware } from "./sharpness_aware.js";
import { ClampSAM, ClipSAM } from "./clampsam.js";
import { FisherSAM } from "./fisher_sam.js";
import { FriendlySAM } from "./friendly_sam.js";
import { GSAM } from "./gsam.js";
import { RandomSAM } from "./random_sam.js";
import { CustomSAME, SAMCkpt, SAME } from "./same.js";
import { SAMAgree, SAMDirection, SAMMagnitude, SGDAgree } from "./swaps.js";
import { USAM } from "./usam.js";
import { VaSSO } from "./vasso.js";
import { WSAM, clipByGlobalNorm } from "./wsam.js";
import { LookSAM } from "./looksam.js";
import { MultiStepSAM } from "./msharpness.js";
import { topKMask } from "./masks.js";
import { SSAMD } from "./ssam.js";
import { AdamWMSAM, MSAM } from "./msam.js";
import { ScheduleFreeAdamW } from "./schedule_free.js";
import { AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree } from "./msam_schedule_free.js";
import { SAMAnatomy } from "./samanatomy.js";

export { Adam, AdamW, Oracle, SAM, SGD, SharpnessAware };
export { ClampSAM, ClipSAM, CustomSAME, FisherSAM, FriendlySAM, GSAM, RandomSAM, SAMAgree, SAMCkpt };
export { SAMDirection, SAME, SAMMagnitude, SGDAgree, USAM, VaSSO };
export { proportionalRho } from "./gsam.js";
export { AdamWMSAM, AdamWMSAMScheduleFree, LookSAM, MSAM, MultiStepSAM, SAMAnatomy };
export { NotesAdamWMSAMScheduleFree, ScheduleFreeAdamW, SSAMD, WSAM, clipByGlobalNorm, topKMask };

/** The base optimizers, by class name. */
export const BASE_CLASSES = { SGD, Adam, AdamW };

/** Every variant class with a browser twin, by the reference's class name. */
export const TWINS = {
  SAM,
  USAM,
  FisherSAM,
  GSAM,
  FriendlySAM,
  VaSSO,
  RandomSAM,
  SAME,
  CustomSAME,
  SAMCkpt,
  SAMDirection,
  SAMMagnitude,
  SAMAgree,
  SGDAgree,
  ClampSAM,
  ClipSAM,
  WSAM,
  LookSAM,
  MultiStepSAM,
  SSAMD,
  MSAM,
  AdamWMSAM,
  ScheduleFreeAdamW,
  NotesAdamWMSAMScheduleFree,
  AdamWMSAMScheduleFree,
  SAMAnatomy,
};
