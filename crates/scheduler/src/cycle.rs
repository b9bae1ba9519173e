//! The baseline/hotpatch cycle (DESIGN §1 "Cycle").
