"""Export a fastformer checkpoint to serving engines (today: CTranslate2)."""
