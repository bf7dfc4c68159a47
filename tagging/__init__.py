"""Batch tagging, a stage of its own beside retrieval: the tagger (`tagger`: few-shot prompts, constrained
scoring, a kNN vote), its calibrated confidence and precision floors (`confidence`), its evaluation against fair
baselines (`evaluate`), table files and the resumable run (`tables`, `checkpoint`), background jobs (`jobs`) and
confirmed tags for the next night (`confirm`)."""
