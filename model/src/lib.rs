//! BERT and DistilBERT on the smelt engine.
