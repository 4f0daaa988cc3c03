"""milestones: per-model aggregates across revisions (emergence, brackets, groups, refinement, findings)"""
